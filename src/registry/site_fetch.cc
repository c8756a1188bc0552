// Mirror, site data plane: chunked, site-wide single-flight blob fetches
// (designated fetchers, chunks from peers, assembly, publishing). Partial
// blobs on disk are in partial_blobs.cc; peer-held blobs and serving chunks
// to peers in peer_blobs.cc.
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <set>
#include <thread>

#include "base/file_io.h"
#include "registry/site_blob.h"
#include "site/chunk_plan.h"

namespace ep {

namespace site_fetch {
wire::ChunkRequest chunk_request(const Digest& digest, uint64_t index, uint64_t chunk_size, uint64_t blob_size) {
  wire::ChunkRequest request;
  request.set_id(index + 1);
  request.set_digest(digest.str());
  request.set_index(static_cast<uint32_t>(index));
  request.set_chunk_size(chunk_size);
  request.set_blob_size(blob_size);
  return request;
}

}  // namespace site_fetch

using namespace site_fetch;

namespace {
constexpr int kParallelChunks = 4;

// A Content-Range header names exactly bytes [from, from + length) of `total`.
bool content_range_is(const std::string& value, uint64_t from, uint64_t length, uint64_t total) {
  const std::string range = "bytes " + std::to_string(from) + "-" + std::to_string(from + length - 1) + "/";
  return value == range + std::to_string(total) || value == range + "*";
}
}  // namespace

Status Mirror::chunk_from_upstream(Upstream& up, const std::string& repo, SiteBlob& sb, uint64_t index,
                                   bool whole_blob) {
  Status outcome;
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool another_stream = false;
    {
      // Single flight per chunk; while the whole blob streams in here, the
      // chunk comes with that stream.
      std::unique_lock lock(sb.mu);
      sb.cv.wait(lock, [&] { return sb.have[index] || (!sb.fetching[index] && !sb.streaming_whole); });
      if (sb.have[index]) return Status::Ok();
      sb.fetching[index] = 1;
      if (whole_blob) sb.streaming_whole = true;
    }
    outcome = stream_from_upstream(up, repo, sb, index, whole_blob, another_stream);
    std::unique_lock lock(sb.mu);
    if (another_stream) sb.cv.wait(lock, [&] { return !sb.streaming_whole; });
    if (sb.have[index]) return Status::Ok();
    if (!another_stream) break;
  }
  return outcome.ok() ? Status{Errc::upstream_unavailable, "upstream " + up.describe() + " sent a short chunk"}
                      : outcome;
}

Status Mirror::stream_from_upstream(Upstream& up, const std::string& repo, SiteBlob& sb, uint64_t index,
                                    bool whole_blob, bool& another_stream) {
  const auto range = site::chunk_range(sb.size, sb.chunk_size, index);
  // The chunks this fetch writes: the one asked for (claimed by the caller)
  // and, when the upstream ignores Range and sends the whole blob, every
  // chunk nobody else here is fetching: the blob crosses the uplink once.
  std::vector<uint8_t> mine(sb.have.size(), 0);
  mine[index] = 1;
  bool whole_body = false;
  uint64_t base = range.offset, seen = 0;  // the body starts at blob offset `base`
  Sha256 hash;  // of the chunk the body is in; recorded with it, so peers can verify what we serve
  auto claim = [&](uint64_t k) {  // caller holds sb.mu
    if (!sb.have[k] && !sb.fetching[k]) sb.fetching[k] = mine[k] = 1;
  };
  if (whole_blob) {  // the caller set streaming_whole
    std::lock_guard lock(sb.mu);
    whole_body = true;
    base = 0;
    for (uint64_t k = 0; k < mine.size(); ++k) claim(k);
  }
  std::string refused;  // why an answer was not taken
  BodySink sink{[&](const HttpResponse& head) {
                  if (head.status == 206) {  // exactly the range asked for (a whole blob asks for bytes=0-)
                    const uint64_t from = whole_body ? 0 : range.offset;
                    const uint64_t length = whole_body ? sb.size : range.length;
                    if (head.content_length != length ||
                        !content_range_is(head.header("content-range"), from, length, sb.size)) {
                      refused = "a partial answer for another range";
                      return false;
                    }
                    up.saw_ranges(true);
                    return true;
                  }
                  if (head.status != 200) return false;
                  if (head.content_length != sb.size) {  // a 200 must be the whole blob
                    refused = "an answer that is not the whole blob";
                    return false;
                  }
                  up.saw_ranges(false);
                  if (whole_body || range.length == sb.size) return true;
                  // It ignored the Range: the whole blob streams in here, once.
                  std::lock_guard lock(sb.mu);
                  if (sb.streaming_whole) {
                    another_stream = true;
                    return false;
                  }
                  sb.streaming_whole = whole_body = true;
                  base = 0;
                  for (uint64_t k = 0; k < mine.size(); ++k) claim(k);
                  return true;
                },
                [&](const char* data, size_t n) -> Status {
                  if (stopping_) return Status{Errc::io_error, "node is shutting down"};
                  bytes_from_upstream_ += n;
                  while (n > 0) {
                    const uint64_t at = base + seen;
                    if (at >= (whole_body ? sb.size : range.offset + range.length))
                      return Status{Errc::io_error, "upstream sent more than the range"};
                    const uint64_t k = at / sb.chunk_size;
                    const auto chunk = site::chunk_range(sb.size, sb.chunk_size, k);
                    if (whole_body && at == chunk.offset && !mine[k]) {  // freed meanwhile by a failed fetch
                      std::lock_guard lock(sb.mu);
                      claim(k);
                    }
                    const size_t piece = static_cast<size_t>(std::min<uint64_t>(n, chunk.offset + chunk.length - at));
                    if (mine[k]) {
                      if (auto s = pwrite_all(sb.fd.get(), data, piece, at, "chunk"); !s) return s;
                      hash.update(data, piece);
                    }
                    data += piece;
                    n -= piece;
                    seen += piece;
                    if (mine[k] && at + piece == chunk.offset + chunk.length) {
                      std::lock_guard lock(sb.mu);
                      sb.fetching[k] = mine[k] = 0;
                      mark_present(sb, k, hash.finish().str());
                      hash = Sha256();
                      sb.cv.notify_all();
                    }
                  }
                  return Status::Ok();
                }};
  // A whole blob is asked for as "bytes=0-" too: the answer (206 or 200)
  // shows whether the upstream serves ranges after all.
  const std::string wanted = whole_blob ? "bytes=0-"
                                        : "bytes=" + std::to_string(range.offset) + "-" +
                                              std::to_string(range.offset + range.length - 1);
  auto response = up.get(repo, "blobs/" + sb.digest.str(), "GET", {{"Range", wanted}}, &sink);
  Status outcome;
  if (!response)
    outcome = response.status();
  else if (!refused.empty())
    outcome = Status{Errc::upstream_unavailable, "upstream " + up.describe() + " sent " + refused};
  else if (response->status != 206 && response->status != 200)
    outcome = Status{Errc::upstream_unavailable, "upstream " + up.describe() + " answered HTTP " +
                                                     std::to_string(response->status) + " for a chunk"};
  std::lock_guard lock(sb.mu);
  for (uint64_t k = 0; k < mine.size(); ++k)
    if (mine[k]) sb.fetching[k] = 0;  // a cut stream: not written, someone may fetch it again
  if (whole_body) sb.streaming_whole = false;
  sb.cv.notify_all();
  return outcome;
}

Status Mirror::store_chunk(SiteBlob& sb, uint64_t index, std::string_view data, const std::string& digest) {
  {
    // Present chunks are never written again: they may be hashed and
    // streamed already (single writer per chunk, like chunk_from_upstream).
    std::unique_lock lock(sb.mu);
    sb.cv.wait(lock, [&] { return !sb.fetching[index]; });
    if (sb.have[index]) return Status::Ok();
    sb.fetching[index] = 1;
  }
  auto range = site::chunk_range(sb.size, sb.chunk_size, index);
  Status written = pwrite_all(sb.fd.get(), data.data(), data.size(), range.offset, "a chunk");
  std::lock_guard lock(sb.mu);
  sb.fetching[index] = 0;
  if (written) mark_present(sb, index, digest);
  sb.cv.notify_all();
  return written;
}

std::optional<Status> Mirror::chunk_from_peer(SiteBlob& sb, const std::string& peer, const std::string& address,
                                              const wire::ChunkRequest& request, std::chrono::milliseconds stall,
                                              const std::string& expected) {
  const uint64_t index = request.index();
  const auto range = site::chunk_range(sb.size, sb.chunk_size, index);
  const auto t0 = std::chrono::steady_clock::now();
  // The bytes go straight into the staging file as they arrive, hashed on
  // the way, when this fetch is the chunk's only writer; the chunk counts
  // only once the frame authenticated and the digest matched. If another
  // source is writing it (a hedge that overlapped), they are held in memory
  // and stored afterwards, if still needed; if it is present, dropped.
  enum class Into { nothing, file, memory } into = Into::nothing;
  std::string want = expected, held;
  Sha256 hash;
  uint64_t received = 0;
  transfer::ChunkSink sink{[&](const wire::ChunkResponse& header, uint64_t length) {
                             if (header.status() != wire::ChunkResponse::OK || length != range.length) return Status::Ok();
                             if (want.empty()) want = header.chunk_digest();  // the digest the peer recorded
                             std::lock_guard lock(sb.mu);
                             if (sb.have[index]) return Status::Ok();
                             into = sb.fetching[index] ? Into::memory : Into::file;
                             if (into == Into::file) sb.fetching[index] = 1;
                             return Status::Ok();
                           },
                           [&](const unsigned char* data, size_t n) -> Status {
                             if (into == Into::nothing) return Status::Ok();
                             hash.update(data, n);
                             if (into == Into::memory)
                               held.append(reinterpret_cast<const char*>(data), n);
                             else if (auto s = pwrite_all(sb.fd.get(), data, n, range.offset + received, "a chunk"); !s)
                               return s;
                             received += n;
                             return Status::Ok();
                           }};
  auto answer = chunk_client_->fetch(address, request, stall, &sink);
  const bool whole = answer && answer->status() == wire::ChunkResponse::OK && received == range.length;
  const bool verified = whole && into != Into::nothing && !want.empty() && hash.finish().str() == want;
  if (into == Into::file) {
    std::lock_guard lock(sb.mu);
    sb.fetching[index] = 0;
    if (verified) mark_present(sb, index, want);
    sb.cv.notify_all();
  }
  if (whole && into != Into::nothing && !verified)
    penalise(peer, "chunk " + std::to_string(index) + " of " + sb.digest.str() +
                       (want.empty() ? " came without a digest" : " did not match its digest"));
  if (answer && answer->status() == wire::ChunkResponse::OK && into == Into::nothing) {
    std::lock_guard lock(sb.mu);
    if (sb.have[index]) return Status::Ok();  // another source brought it meanwhile
  }
  if (!verified) return std::nullopt;
  count_from_peer(peer, range.length, std::chrono::steady_clock::now() - t0);
  return into == Into::memory ? store_chunk(sb, index, held, want) : Status::Ok();
}

Status Mirror::obtain_chunk(Upstream& up, const std::string& repo, SiteBlob& sb, uint64_t index) {
  {
    std::lock_guard lock(sb.mu);
    if (sb.have[index]) return Status::Ok();
  }
  std::map<std::string, std::string> address_of;
  std::vector<std::string> names{self_name_};
  std::vector<std::string> announced;  // peers that announced this chunk
  const auto live = peers_->live();
  for (const auto& peer : live) {
    address_of[peer.name] = peer.data_address;
    names.push_back(peer.name);
    if (const auto* h = peer.holding(sb.digest.str()); h && h->has_chunk(index) && !penalised(peer.name))
      announced.push_back(peer.name);
  }
  // A peer that already has the chunk first (spread over them by chunk
  // index): no upstream involved. It may have dropped it since: then the
  // designated fetchers, as usual.
  for (size_t k = 0; k < std::min<size_t>(announced.size(), 2); ++k) {
    const auto& peer = announced[(index + k) % announced.size()];
    auto request = chunk_request(sb.digest, index, sb.chunk_size, sb.size);
    request.set_repo(repo);
    request.set_asker(self_name_);
    if (auto stored = chunk_from_peer(sb, peer, address_of[peer], request, stall_bound(peer, kHolderStall), {}))
      return *stored;
  }
  // Without Range support upstream, one designated fetcher per blob (the
  // order of chunk 0 for all): it gets the blob in one GET.
  const uint64_t key = sb.upstream_ranges ? index : 0;
  for (const auto& candidate : prefer_trusted(site::rendezvous_order(sb.digest.str(), key, names))) {
    if (candidate == self_name_) {
      if (chunk_from_upstream(up, repo, sb, index, !sb.upstream_ranges)) return Status::Ok();
      continue;
    }
    auto request = chunk_request(sb.digest, index, sb.chunk_size, sb.size);
    request.set_ns(up.ns());
    request.set_repo(repo);
    request.set_fetch(true);
    request.set_whole_blob(!sb.upstream_ranges);
    request.set_asker(self_name_);
    // Fixed bound, not the adaptive one: a fetcher's answer waits on the
    // shared uplink (it sends WORKING notes meanwhile), so its past speed
    // says little about this chunk. A dead, slow, failing or lying peer:
    // the next in rendezvous order.
    if (auto stored = chunk_from_peer(sb, candidate, address_of[candidate], request, kFetcherStall, {})) return *stored;
  }
  return chunk_from_upstream(up, repo, sb, index, !sb.upstream_ranges);  // last resort: every member failed
}

std::shared_ptr<InflightBlob> Mirror::start_chunked(const Digest& digest, uint64_t size, ChunkedBody body) {
  auto sb = site_blob(digest, size);
  if (!sb) return nullptr;
  std::lock_guard lock(mu_);
  if (auto it = inflight_.find(digest.str()); it != inflight_.end())
    if (auto existing = it->second.lock()) return existing;
  auto fetch = std::make_shared<InflightBlob>(digest, UniqueFd(::dup(sb->fd.get())));
  fetch->begin(size);
  inflight_[digest.str()] = fetch;
  ++running_;
  std::thread([body = std::move(body), fetch, sb] { body(fetch, sb); }).detach();
  return fetch;
}

void Mirror::publish_chunked(const std::shared_ptr<InflightBlob>& fetch, const std::shared_ptr<SiteBlob>& sb,
                             const std::string& repo, Status outcome) {
  if (outcome) outcome = blobs_.commit_staging(sb->staging_id, sb->digest);
  if (outcome) outcome = registry_.link_blob(repo, sb->digest);
  if (outcome) {  // every chunk verified and so did the blob: peers may be told these digests
    {
      std::lock_guard lock(sb->mu);
      chunk_digests_.remember(sb->digest, sb->chunk_size, sb->chunk_digests);
    }
    note_completed(sb->digest);
  }
  {
    std::lock_guard lock(mu_);
    if (auto it = site_blobs_.find(sb->digest.str()); it != site_blobs_.end() && it->second == sb) site_blobs_.erase(it);
  }
  if (!outcome) blobs_.remove_staging(sb->staging_id);  // nothing unverified stays behind
  blobs_.remove_staging(journal_id(sb->staging_id));
  finish_fetch(fetch, outcome);
}

bool Mirror::serves_ranges(Upstream& up, const std::string& repo, const Digest& digest,
                           const std::string& accept_ranges) {
  // Accept-Ranges is optional: silence proves nothing, so ask for one byte.
  // An upstream that ignores Range starts sending the whole blob: the
  // connection is closed after the head, and the answer is remembered.
  if (accept_ranges.find("bytes") != std::string::npos) return true;
  if (auto seen = up.serves_ranges()) return *seen;
  BodySink refuse{[](const HttpResponse&) { return false; }, [](const char*, size_t) { return Status::Ok(); }};
  auto probe = up.get(repo, "blobs/" + digest.str(), "GET", {{"Range", "bytes=0-0"}}, &refuse, std::chrono::seconds(5));
  if (!probe || (probe->status != 206 && probe->status != 200)) return false;  // one GET per blob: always safe
  up.saw_ranges(probe->status == 206);
  return probe->status == 206;
}

std::shared_ptr<InflightBlob> Mirror::start_site_fetch(Upstream& up, const std::string& local, const std::string& repo,
                                                       const Digest& digest, uint64_t size, bool ranges) {
  return start_chunked(digest, size, [this, &up, local, repo, ranges](auto fetch, auto sb) {
    sb->upstream_ranges = ranges;
    assemble(fetch, sb, local, [&](uint64_t i) { return obtain_chunk(up, repo, *sb, i); });
  });
}

void Mirror::assemble(std::shared_ptr<InflightBlob> blob, std::shared_ptr<SiteBlob> sb, const std::string& repo,
                      const std::function<Status(uint64_t index)>& obtain) {
  const uint64_t chunks = sb->have.size();
  std::atomic<uint64_t> next{0};
  std::mutex failure_mu;
  Status failure;
  std::vector<std::thread> workers;
  for (int w = 0; w < kParallelChunks; ++w)
    workers.emplace_back([&] {
      for (uint64_t i; !stopping_ && (i = next++) < chunks;) {
        {
          std::lock_guard lock(sb->mu);
          if (sb->have[i]) continue;  // resumed, or brought by a peer's request meanwhile
        }
        auto s = obtain(i);
        std::lock_guard lock(sb->mu);
        if (s) sb->have[i] = 1;
        if (!s) {
          std::lock_guard f(failure_mu);
          if (failure.ok()) failure = s;
          next = chunks;  // stop the others
        }
        sb->cv.notify_all();
      }
    });
  // Hash the contiguous prefix as it grows and let clients stream it.
  Sha256 hash;
  uint64_t hashed = 0;
  // Hashing reads at most this much at a time, however far the prefix grew.
  const uint64_t piece = std::min<uint64_t>(sb->chunk_size, 1 << 20);
  std::unique_ptr<char[]> buffer(new char[piece]);
  while (hashed < sb->size) {
    uint64_t prefix;
    {
      std::unique_lock lock(sb->mu);
      auto contiguous = [&] {
        uint64_t i = hashed / sb->chunk_size;
        while (i < chunks && sb->have[i]) ++i;
        return std::min(sb->size, i * sb->chunk_size);
      };
      // Bounded waits: `stopping_` is set without notifying this blob.
      while (!sb->cv.wait_for(lock, std::chrono::milliseconds(200), [&] {
        std::lock_guard f(failure_mu);
        return contiguous() > hashed || !failure.ok() || stopping_;
      })) {
      }
      prefix = contiguous();
    }
    if (prefix <= hashed) break;  // failed or stopping
    while (hashed < prefix) {
      uint64_t n = std::min(piece, prefix - hashed);
      if (!pread_exact(sb->fd.get(), buffer.get(), n, hashed, "a chunk")) break;
      hash.update(buffer.get(), n);
      hashed += n;
      blob->advance(hashed);
    }
    if (hashed < prefix) break;  // unreadable staging file
  }
  for (auto& w : workers) w.join();
  Status outcome = failure;
  if (outcome && hashed != sb->size) outcome = Status{Errc::io_error, "site fetch stopped"};
  if (outcome && hash.finish() != sb->digest) {
    // Some chunk verified against a digest that was itself wrong (a peer
    // recorded bad upstream bytes, or lied). Which one cannot be told, so
    // for a while this blob is fetched here straight from upstream.
    outcome = Status{Errc::upstream_unavailable, "assembled chunks do not match " + sb->digest.str() +
                                                     "; the next pull fetches it from upstream directly"};
    std::lock_guard lock(mu_);
    site_fetch_failed_[sb->digest.str()] = std::chrono::steady_clock::now();
  }
  publish_chunked(blob, sb, repo, outcome);
}

}  // namespace ep
