// Mirror, site data plane: chunked, site-wide single-flight blob fetches
// (designated fetchers, chunks from peers, assembly, publishing). Chunks
// from upstream are in upstream_chunks.cc, partial blobs on disk in
// partial_blobs.cc, peer-held blobs and serving chunks to peers in
// peer_blobs.cc.
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <set>
#include <thread>

#include "base/file_io.h"
#include "base/log.h"
#include "dataplane/site_blob.h"
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
}  // namespace

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
  {
    std::lock_guard lock(sb.mu);
    sb.fetching[index] = 0;
    if (written) mark_present(sb, index, digest);
    sb.cv.notify_all();
  }
  if (written) journal_chunk(sb, index, digest);
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
    {
      std::lock_guard lock(sb.mu);
      sb.fetching[index] = 0;
      if (verified) mark_present(sb, index, want);
      sb.cv.notify_all();
    }
    if (verified) journal_chunk(sb, index, want);
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

Status Mirror::obtain_chunk(Upstream& up, const std::string& repo, SiteBlob& sb, uint64_t index,
                            bool upstream_ranges) {
  {
    std::lock_guard lock(sb.mu);
    if (sb.have[index]) return Status::Ok();
  }
  const auto live = peers_->live();
  std::vector<const site::PeerAddress*> announced;  // peers that announced this chunk
  for (const auto& peer : live)
    if (const auto* h = peer.holding(sb.digest.str()); h && h->has_chunk(index) && !penalised(peer.name))
      announced.push_back(&peer);
  // A peer that already has the chunk first (spread over them by chunk
  // index): no upstream involved. It may have dropped it since: then the
  // designated fetchers, as usual.
  for (size_t k = 0; k < std::min<size_t>(announced.size(), 2); ++k) {
    const auto& peer = *announced[(index + k) % announced.size()];
    auto request = chunk_request(sb.digest, index, sb.chunk_size, sb.size);
    request.set_repo(repo);
    request.set_asker(self_name_);
    if (auto stored = chunk_from_peer(sb, peer.name, peer.data_address, request, stall_bound(peer.name, kHolderStall), {}))
      return *stored;
  }
  return chunk_via_fetchers(up, repo, sb, index, live, upstream_ranges);
}

Status Mirror::chunk_via_fetchers(Upstream& up, const std::string& repo, SiteBlob& sb, uint64_t index,
                                  const std::vector<site::PeerAddress>& live, bool upstream_ranges) {
  std::map<std::string, std::string> address_of;
  std::vector<std::string> names{self_name_};
  for (const auto& peer : live) {
    address_of[peer.name] = peer.data_address;
    names.push_back(peer.name);
  }
  // Without Range support upstream, one designated fetcher per blob (the
  // order of chunk 0 for all): it gets the blob in one GET.
  const uint64_t key = upstream_ranges ? index : 0;
  for (const auto& candidate : prefer_trusted(site::rendezvous_order(sb.digest.str(), key, names))) {
    if (candidate == self_name_) {
      if (chunk_from_upstream(up, repo, sb, index, !upstream_ranges)) return Status::Ok();
      continue;
    }
    auto request = chunk_request(sb.digest, index, sb.chunk_size, sb.size);
    request.set_ns(up.ns());
    request.set_repo(repo);
    request.set_fetch(true);
    request.set_whole_blob(!upstream_ranges);
    request.set_asker(self_name_);
    // Fixed bound, not the adaptive one: a fetcher's answer waits on the
    // shared uplink (it sends WORKING notes meanwhile), so its past speed
    // says little about this chunk. A dead, slow, failing or lying peer:
    // the next in rendezvous order.
    if (auto stored = chunk_from_peer(sb, candidate, address_of[candidate], request, kFetcherStall, {})) return *stored;
  }
  return chunk_from_upstream(up, repo, sb, index, !upstream_ranges);  // last resort: every member failed
}

std::shared_ptr<InflightBlob> Mirror::start_chunked(const Digest& digest, uint64_t size, ChunkedBody body) {
  auto sb = site_blob(digest, size);
  if (!sb) return nullptr;
  std::shared_ptr<InflightBlob> fetch;
  {
    std::lock_guard lock(mu_);
    if (auto it = inflight_.find(digest.str()); it != inflight_.end())
      if (auto existing = it->second.lock()) return existing;
    fetch = std::make_shared<InflightBlob>(digest, UniqueFd(::dup(sb->fd.get())));
    fetch->begin(size);
    inflight_[digest.str()] = fetch;
  }
  body(fetch, sb);  // starts the assembly on the chunk pool and returns
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
                                                       const Digest& digest, uint64_t size, bool ranges) {
  return start_chunked(digest, size, [this, &up, local, repo, ranges](auto fetch, auto sb) {
    assemble(fetch, sb, local, [this, &up, repo, sb, ranges](uint64_t i) { return obtain_chunk(up, repo, *sb, i, ranges); });
  });
}

// One blob being assembled from chunks: kParallelChunks jobs on the chunk
// pool obtain them; the contiguous prefix is hashed and made readable as it
// grows, by one worker at a time; the job that ends last publishes. No
// thread waits for the others.
struct Mirror::Assembly {
  std::shared_ptr<InflightBlob> blob;
  std::shared_ptr<SiteBlob> sb;
  std::string repo;
  std::function<Status(uint64_t index)> obtain;
  std::atomic<uint64_t> next{0};  // the next chunk index to take
  std::mutex mu;                  // guards the four below
  Status failure;
  int workers = kParallelChunks;  // jobs not yet ended
  bool hashing = false;           // a worker is hashing the prefix
  bool grown = false;             // the prefix grew while it hashed
  // Only the worker hashing (or the last one) touches these.
  uint64_t hashed = 0;
  Sha256 hash;
  bool verified_whole = false;  // a one-chunk blob whose chunk hashed to the blob's digest
};

void Mirror::assemble(std::shared_ptr<InflightBlob> blob, std::shared_ptr<SiteBlob> sb, const std::string& repo,
                      std::function<Status(uint64_t index)> obtain) {
  auto a = std::make_shared<Assembly>();
  a->blob = std::move(blob);
  a->sb = std::move(sb);
  a->repo = repo;
  a->obtain = std::move(obtain);
  for (int w = 0; w < kParallelChunks; ++w)
    if (!chunk_workers_->post([this, a] { assembly_worker(a); }))
      worker_ended(a, Status{Errc::upstream_unavailable, "node is stopping"});
}

void Mirror::assembly_worker(const std::shared_ptr<Assembly>& a) {
  auto& sb = *a->sb;
  const uint64_t chunks = sb.have.size();
  Status outcome;
  for (uint64_t i; !stopping_ && (i = a->next++) < chunks;) {
    {
      std::lock_guard lock(sb.mu);
      if (sb.have[i]) continue;  // resumed, or brought by a peer's request meanwhile
    }
    outcome = guarded("a chunk fetch", [&] { return a->obtain(i); });
    {
      std::lock_guard lock(sb.mu);
      if (outcome) sb.have[i] = 1;
      sb.cv.notify_all();
    }
    if (!outcome) {
      a->next = chunks;  // the others stop too
      break;
    }
    hash_prefix(*a);
  }
  worker_ended(a, outcome);
}

void Mirror::worker_ended(const std::shared_ptr<Assembly>& a, const Status& outcome) {
  {
    std::lock_guard lock(a->mu);
    if (!outcome && a->failure.ok()) a->failure = outcome;
    if (--a->workers > 0) return;
  }
  hash_prefix(*a);  // the last one: no other worker runs
  finish_assembly(*a);
}

// Hashes the contiguous prefix as far as it reaches and lets clients stream
// it. One hasher at a time: a worker that finds another hashing leaves it the
// work, and the hasher looks again before it stops.
void Mirror::hash_prefix(Assembly& a) {
  {
    std::lock_guard lock(a.mu);
    a.grown = true;
    if (a.hashing) return;
    a.hashing = true;
  }
  auto& sb = *a.sb;
  const uint64_t piece = std::min<uint64_t>(sb.chunk_size, 1 << 20);  // read at most this much at a time
  std::unique_ptr<char[]> buffer;
  for (;;) {
    {
      std::lock_guard lock(a.mu);
      if (!a.grown) {
        a.hashing = false;
        return;
      }
      a.grown = false;
    }
    uint64_t prefix;
    bool one_verified_chunk = false;
    {
      std::lock_guard lock(sb.mu);
      // A blob of one chunk was hashed whole as that chunk arrived (or was
      // re-verified on resume): its bytes are not read and hashed again.
      one_verified_chunk =
          a.hashed == 0 && sb.have.size() == 1 && sb.have[0] && sb.chunk_digests[0] == sb.digest.str();
      uint64_t i = a.hashed / sb.chunk_size;
      while (i < sb.have.size() && sb.have[i]) ++i;
      prefix = std::min(sb.size, i * sb.chunk_size);
    }
    if (one_verified_chunk) {
      a.verified_whole = true;
      a.hashed = sb.size;
      a.blob->advance(a.hashed);
    }
    if (prefix > a.hashed && !buffer) buffer.reset(new char[piece]);
    while (a.hashed < prefix) {
      const uint64_t n = std::min(piece, prefix - a.hashed);
      if (!pread_exact(sb.fd.get(), buffer.get(), n, a.hashed, "a chunk")) break;  // the blob ends short: fails
      a.hash.update(buffer.get(), n);
      a.hashed += n;
      a.blob->advance(a.hashed);
    }
  }
}

void Mirror::finish_assembly(Assembly& a) {
  Status outcome = a.failure;
  if (outcome && a.hashed != a.sb->size) outcome = Status{Errc::io_error, "site fetch stopped"};
  if (outcome && !a.verified_whole && a.hash.finish() != a.sb->digest) {
    // Some chunk verified against a digest that was itself wrong (a peer
    // recorded bad upstream bytes, or lied). Which one cannot be told, so
    // for a while this blob is fetched here straight from upstream.
    outcome = Status{Errc::upstream_unavailable, "assembled chunks do not match " + a.sb->digest.str() +
                                                     "; the next pull fetches it from upstream directly"};
    std::lock_guard lock(mu_);
    site_fetch_failed_[a.sb->digest.str()] = std::chrono::steady_clock::now();
  }
  publish_chunked(a.blob, a.sb, a.repo, outcome);
}

}  // namespace ep
