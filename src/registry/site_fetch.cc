// Mirror, site data plane: chunked, site-wide single-flight blob fetches
// (designated fetchers, assembly, publishing). Peer-held blobs and serving
// chunks to peers are in peer_blobs.cc.
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
// "chunks-<32 hex of the digest>-<random>": found again by digest on resume.
std::string staging_prefix_for(const Digest& d) { return "chunks-" + std::string(d.hex().substr(0, 32)) + "-"; }
}  // namespace

void Mirror::enable_site(std::shared_ptr<site::PeerDirectory> peers, std::shared_ptr<transfer::ChunkClient> client,
                         std::string self_name, uint64_t chunk_size) {
  peers_ = std::move(peers);
  chunk_client_ = std::move(client);
  self_name_ = std::move(self_name);
  chunk_size_ = chunk_size;
  resume_partial_blobs();
}

std::vector<Mirror::Partial> Mirror::partial_blobs() {
  std::vector<Partial> out;
  std::lock_guard lock(mu_);
  for (const auto& [digest, sb] : site_blobs_) {
    Partial p{digest, sb->size, 0};
    std::lock_guard blob_lock(sb->mu);
    for (uint64_t i = 0; i < sb->have.size(); ++i)
      if (sb->have[i]) p.present += site::chunk_range(sb->size, sb->chunk_size, i).length;
    out.push_back(p);
  }
  for (const auto& [digest, weak] : inflight_)
    if (auto fetch = weak.lock(); fetch && !site_blobs_.count(digest)) {
      auto size = fetch->wait_size(std::chrono::milliseconds(0));
      out.push_back(Partial{digest, size ? *size : 0, fetch->readable()});
    }
  return out;
}

void Mirror::drop_idle_site_blobs() {
  // Chunks fetched for peers, or resumed, that no pull here ever assembled:
  // after a while nobody is coming for them; free their disk.
  const auto now = std::chrono::steady_clock::now();
  std::vector<std::shared_ptr<SiteBlob>> idle;
  for (auto it = site_blobs_.begin(); it != site_blobs_.end();) {
    auto fetch = inflight_.find(it->first);
    bool assembling = fetch != inflight_.end() && !fetch->second.expired();
    if (!assembling && now - it->second->last_used > kIdleSiteBlob) {
      idle.push_back(it->second);
      it = site_blobs_.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& sb : idle) {
    blobs_.remove_staging(sb->staging_id);
    blobs_.remove_staging(journal_id(sb->staging_id));
  }
}

std::shared_ptr<Mirror::SiteBlob> Mirror::site_blob(const Digest& digest, uint64_t size) {
  std::lock_guard lock(mu_);
  drop_idle_site_blobs();
  auto& slot = site_blobs_[digest.str()];
  if (slot) {
    slot->last_used = std::chrono::steady_clock::now();
    return slot->size == size ? slot : nullptr;
  }
  auto sb = std::make_shared<SiteBlob>(digest);
  sb->staging_id = random_id(staging_prefix_for(digest));
  auto fd = blobs_.open_staging(sb->staging_id, /*create=*/true);
  if (!fd) {
    site_blobs_.erase(digest.str());
    return nullptr;
  }
  sb->fd = std::move(*fd);
  sb->size_chunks(size, chunk_size_);
  // Without a journal the blob still assembles; it just cannot resume.
  if (auto jfd = blobs_.open_staging(journal_id(sb->staging_id), /*create=*/true))
    sb->journal = ChunkJournal::create(std::move(*jfd), digest, size, chunk_size_);
  slot = sb;
  return sb;
}

void Mirror::resume_partial_blobs() {
  std::set<std::string> ids;
  for (auto& id : blobs_.list_staging())
    if (id.rfind("chunks-", 0) == 0) ids.insert(id);
  for (const auto& id : ids) {
    if (is_journal_id(id)) continue;
    auto data = blobs_.open_staging(id, false);
    auto journal = ids.count(journal_id(id)) ? blobs_.open_staging(journal_id(id), false)
                                             : Result<UniqueFd>(Status{Errc::blob_upload_unknown, "no journal"});
    std::optional<ChunkJournal::Contents> contents;
    if (data && journal) contents = ChunkJournal::read(journal->get());
    auto digest = contents ? Digest::parse(contents->blob) : Result<Digest>(Status{Errc::bad_request, ""});
    bool duplicate = false;
    if (digest) {
      std::lock_guard lock(mu_);
      duplicate = site_blobs_.count(digest->str()) > 0;  // two partial copies: keep one
    }
    if (!digest || contents->chunk_size != chunk_size_ || id.rfind(staging_prefix_for(*digest), 0) != 0 || duplicate) {
      blobs_.remove_staging(id);  // unusable: start over when it is asked for again
      blobs_.remove_staging(journal_id(id));
      continue;
    }
    auto sb = std::make_shared<SiteBlob>(*digest);
    sb->staging_id = id;
    sb->fd = std::move(*data);
    sb->size_chunks(contents->size, contents->chunk_size);
    const uint64_t n = sb->have.size();
    // Only chunks whose bytes still match their recorded digest count.
    std::unique_ptr<char[]> buffer(new char[sb->chunk_size]);
    uint64_t resumed = 0;
    for (const auto& [index, chunk_digest] : contents->chunks) {
      auto range = site::chunk_range(sb->size, sb->chunk_size, index);
      if (!pread_exact(sb->fd.get(), buffer.get(), range.length, range.offset, "a chunk")) continue;
      if (ep::chunk_digest(std::string_view(buffer.get(), range.length)) != chunk_digest) continue;
      sb->have[index] = 1;
      sb->chunk_digests[index] = chunk_digest;
      ++resumed;
    }
    // A fresh journal listing what survived.
    sb->journal = ChunkJournal::create(std::move(*journal), *digest, sb->size, sb->chunk_size);
    for (uint64_t i = 0; i < n && sb->journal; ++i)
      if (sb->have[i]) sb->journal->record(i, sb->chunk_digests[i]);
    std::cerr << "edgepier: resuming " << digest->str() << " from " << resumed << " of " << n
              << " verified chunks\n";
    std::lock_guard lock(mu_);
    site_blobs_[digest->str()] = std::move(sb);
  }
}

Status Mirror::chunk_from_upstream(Upstream& up, const std::string& repo, SiteBlob& sb, uint64_t index) {
  {
    std::unique_lock lock(sb.mu);
    sb.cv.wait(lock, [&] { return !sb.fetching[index]; });  // single flight per chunk
    if (sb.have[index]) return Status::Ok();
    sb.fetching[index] = 1;
  }
  auto range = site::chunk_range(sb.size, sb.chunk_size, index);
  uint64_t written = 0;
  Sha256 hash;  // recorded with the chunk, so peers can verify what we serve
  bool whole = range.offset == 0 && range.length == sb.size;
  BodySink sink{[&](const HttpResponse& head) { return head.status == 206 || (head.status == 200 && whole); },
                [&](const char* data, size_t n) -> Status {
                  if (stopping_) return Status{Errc::io_error, "node is shutting down"};
                  if (written + n > range.length) return Status{Errc::io_error, "upstream sent more than the range"};
                  if (auto s = pwrite_all(sb.fd.get(), data, n, range.offset + written, "chunk"); !s) return s;
                  hash.update(data, n);
                  written += n;
                  bytes_from_upstream_ += n;
                  return Status::Ok();
                }};
  std::string header = "bytes=" + std::to_string(range.offset) + "-" + std::to_string(range.offset + range.length - 1);
  auto response = up.get(repo, "blobs/" + sb.digest.str(), "GET", {{"Range", header}}, &sink);
  Status outcome;
  if (!response)
    outcome = response.status();
  else if (response->status != 206 && !(response->status == 200 && whole))
    outcome = Status{Errc::upstream_unavailable, "upstream " + up.describe() + " answered HTTP " +
                                                     std::to_string(response->status) + " to a Range request"};
  else if (written != range.length)
    outcome = Status{Errc::upstream_unavailable, "upstream " + up.describe() + " sent a short chunk"};
  std::lock_guard lock(sb.mu);
  sb.fetching[index] = 0;
  if (outcome) mark_present(sb, index, hash.finish().str());
  sb.cv.notify_all();
  return outcome;
}

void Mirror::mark_present(SiteBlob& sb, uint64_t index, const std::string& digest) {
  sb.have[index] = 1;
  sb.chunk_digests[index] = digest;
  if (sb.journal) sb.journal->record(index, digest);
  ++holdings_version_;
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
  for (const auto& candidate : prefer_trusted(site::rendezvous_order(sb.digest.str(), index, names))) {
    if (candidate == self_name_) {
      if (chunk_from_upstream(up, repo, sb, index)) return Status::Ok();
      continue;
    }
    auto request = chunk_request(sb.digest, index, sb.chunk_size, sb.size);
    request.set_ns(up.ns());
    request.set_repo(repo);
    request.set_fetch(true);
    request.set_asker(self_name_);
    // Fixed bound, not the adaptive one: a fetcher's answer waits on the
    // shared uplink (it sends WORKING notes meanwhile), so its past speed
    // says little about this chunk. A dead, slow, failing or lying peer:
    // the next in rendezvous order.
    if (auto stored = chunk_from_peer(sb, candidate, address_of[candidate], request, kFetcherStall, {})) return *stored;
  }
  return chunk_from_upstream(up, repo, sb, index);  // last resort, if self was not tried first
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

std::shared_ptr<InflightBlob> Mirror::start_site_fetch(Upstream& up, const std::string& local, const std::string& repo,
                                                       const Digest& digest, uint64_t size) {
  return start_chunked(digest, size, [this, &up, local, repo](auto fetch, auto sb) {
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
