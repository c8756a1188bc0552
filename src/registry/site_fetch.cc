// Mirror, site data plane: chunked, site-wide single-flight blob fetches.
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "registry/mirror.h"
#include "site/chunk_plan.h"

namespace ep {

// One blob being assembled from chunks (for a local pull, or as the
// designated fetcher of some of its chunks for peers). The staging file holds
// the chunks present; `have` marks them. Guarded by its own mutex.
struct Mirror::SiteBlob {
  explicit SiteBlob(Digest d) : digest(std::move(d)) {}
  Digest digest;
  std::string staging_id;
  UniqueFd fd;
  uint64_t size = 0, chunk_size = 0;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<uint8_t> have, fetching;
  bool pulling = false;  // a local pull owns publishing it
};

namespace {
constexpr int kParallelChunks = 4;
// How long a peer may stall (no bytes) before we go to the next source. A
// designated fetcher may itself wait on a slow, shared uplink: generous. A
// holder serves from its disk: short, so a dead or stuck peer costs little.
constexpr auto kFetcherStall = std::chrono::seconds(30);
constexpr auto kHolderStall = std::chrono::seconds(3);

std::string staging_id_for(const Digest& d) { return "chunks-" + std::string(d.hex().substr(0, 32)); }

wire::ChunkRequest chunk_request(const Digest& digest, uint64_t index, uint64_t chunk_size, uint64_t blob_size) {
  wire::ChunkRequest request;
  request.set_id(index + 1);
  request.set_digest(digest.str());
  request.set_index(static_cast<uint32_t>(index));
  request.set_chunk_size(chunk_size);
  request.set_blob_size(blob_size);
  return request;
}

Status pread_all(int fd, std::string& out, uint64_t offset, uint64_t length) {
  out.resize(length);
  for (uint64_t done = 0; done < length;) {
    auto n = ::pread(fd, out.data() + done, length - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status{Errc::io_error, "short read of a chunk"};
    done += static_cast<uint64_t>(n);
  }
  return Status::Ok();
}
}  // namespace

void Mirror::enable_site(std::shared_ptr<site::PeerDirectory> peers, std::shared_ptr<transfer::ChunkClient> client,
                         std::string self_name, uint64_t chunk_size) {
  peers_ = std::move(peers);
  chunk_client_ = std::move(client);
  self_name_ = std::move(self_name);
  chunk_size_ = chunk_size;
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

std::shared_ptr<Mirror::SiteBlob> Mirror::site_blob(const Digest& digest, uint64_t size) {
  std::lock_guard lock(mu_);
  auto& slot = site_blobs_[digest.str()];
  if (slot) return slot->size == size ? slot : nullptr;
  auto sb = std::make_shared<SiteBlob>(digest);
  sb->staging_id = staging_id_for(digest);
  auto fd = blobs_.open_staging(sb->staging_id, /*create=*/true);
  if (!fd) {
    site_blobs_.erase(digest.str());
    return nullptr;
  }
  sb->fd = std::move(*fd);
  sb->size = size;
  sb->chunk_size = chunk_size_;
  auto n = site::chunk_count(size, chunk_size_);
  sb->have.assign(n, 0);
  sb->fetching.assign(n, 0);
  slot = sb;
  return sb;
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
  bool whole = range.offset == 0 && range.length == sb.size;
  BodySink sink{[&](const HttpResponse& head) { return head.status == 206 || (head.status == 200 && whole); },
                [&](const char* data, size_t n) -> Status {
                  if (written + n > range.length) return Status{Errc::io_error, "upstream sent more than the range"};
                  for (size_t done = 0; done < n;) {
                    auto w = ::pwrite(sb.fd.get(), data + done, n - done,
                                      static_cast<off_t>(range.offset + written + done));
                    if (w < 0 && errno == EINTR) continue;
                    if (w <= 0) return Status{Errc::io_error, std::string("cannot write chunk: ") + std::strerror(errno)};
                    done += static_cast<size_t>(w);
                  }
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
  if (outcome) sb.have[index] = 1;
  sb.cv.notify_all();
  return outcome;
}

Status Mirror::obtain_chunk(Upstream& up, const std::string& repo, SiteBlob& sb, uint64_t index) {
  {
    std::lock_guard lock(sb.mu);
    if (sb.have[index]) return Status::Ok();
  }
  std::map<std::string, std::string> address_of;
  std::vector<std::string> names{self_name_};
  for (const auto& peer : peers_->live()) {
    address_of[peer.name] = peer.data_address;
    names.push_back(peer.name);
  }
  auto range = site::chunk_range(sb.size, sb.chunk_size, index);
  for (const auto& candidate : site::rendezvous_order(sb.digest.str(), index, names)) {
    if (candidate == self_name_) {
      if (chunk_from_upstream(up, repo, sb, index)) return Status::Ok();
      continue;
    }
    auto request = chunk_request(sb.digest, index, sb.chunk_size, sb.size);
    request.set_ns(up.ns());
    request.set_repo(repo);
    request.set_fetch(true);
    auto response = chunk_client_->fetch(address_of[candidate], request, kFetcherStall);
    if (!response || response->status() != wire::ChunkResponse::OK || response->data().size() != range.length)
      continue;  // dead, slow or failing peer: the next in rendezvous order
    const auto& data = response->data();
    if (::pwrite(sb.fd.get(), data.data(), data.size(), static_cast<off_t>(range.offset)) !=
        static_cast<ssize_t>(data.size()))
      return Status{Errc::io_error, "cannot write a chunk"};
    std::lock_guard lock(sb.mu);
    sb.have[index] = 1;
    sb.cv.notify_all();
    return Status::Ok();
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
  {
    std::lock_guard lock(mu_);
    site_blobs_.erase(sb->digest.str());
  }
  if (!outcome) blobs_.remove_staging(sb->staging_id);  // nothing unverified stays behind
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
  std::string buffer;
  while (hashed < sb->size) {
    uint64_t prefix;
    {
      std::unique_lock lock(sb->mu);
      auto contiguous = [&] {
        uint64_t i = hashed / sb->chunk_size;
        while (i < chunks && sb->have[i]) ++i;
        return std::min(sb->size, i * sb->chunk_size);
      };
      sb->cv.wait(lock, [&] {
        std::lock_guard f(failure_mu);
        return contiguous() > hashed || !failure.ok() || stopping_;
      });
      prefix = contiguous();
    }
    if (prefix <= hashed) break;  // failed or stopping
    if (!pread_all(sb->fd.get(), buffer, hashed, prefix - hashed)) break;
    hash.update(buffer.data(), buffer.size());
    hashed = prefix;
    blob->advance(hashed);
  }
  for (auto& w : workers) w.join();
  Status outcome = failure;
  if (outcome && hashed != sb->size) outcome = Status{Errc::io_error, "site fetch stopped"};
  if (outcome && hash.finish() != sb->digest)
    outcome = Status{Errc::upstream_unavailable, "assembled chunks do not match " + sb->digest.str()};
  publish_chunked(blob, sb, repo, outcome);
}

std::pair<std::vector<site::PeerAddress>, uint64_t> Mirror::find_holders(const std::string& repo, const Digest& digest) {
  std::vector<site::PeerAddress> holders;
  uint64_t size = 0;
  if (!peers_) return {holders, size};
  for (const auto& peer : peers_->live()) {
    wire::ChunkRequest probe;
    probe.set_id(1);
    probe.set_digest(digest.str());
    probe.set_repo(repo);
    probe.set_stat(true);
    auto r = chunk_client_->fetch(peer.data_address, probe, std::chrono::seconds(5));
    if (r && r->status() == wire::ChunkResponse::OK) {
      holders.push_back(peer);
      size = r->blob_size();
    }
  }
  return {holders, size};
}

Result<BlobSource> Mirror::blob_from_peers(const std::string& repo, const std::string& digest_text) {
  auto digest = Digest::parse(digest_text);
  if (!digest) return digest.status();
  if (!peers_) return Status{Errc::blob_unknown, "blob unknown to repository: " + digest->str()};
  {
    std::lock_guard lock(mu_);
    if (auto it = inflight_.find(digest->str()); it != inflight_.end())
      if (auto existing = it->second.lock()) {
        auto size = existing->wait_size(std::chrono::minutes(10));
        if (!size) return size.status();
        return BlobSource{std::nullopt, existing, *size};
      }
  }
  // Who holds it completely? Ask the live peers (a pushed blob lives where it was pushed).
  auto [holders, size] = find_holders(repo, *digest);
  if (holders.empty()) return Status{Errc::blob_unknown, "blob unknown to repository: " + digest->str()};
  auto fetch = start_peer_fetch(repo, *digest, holders, size);
  if (!fetch) return Status{Errc::io_error, "cannot stage a blob fetch"};
  return BlobSource{std::nullopt, fetch, size};
}

std::shared_ptr<InflightBlob> Mirror::start_peer_fetch(const std::string& repo, const Digest& digest,
                                                       std::vector<site::PeerAddress> holders, uint64_t size) {
  return start_chunked(digest, size, [this, repo, holders](auto fetch, auto sb) {
    // Chunks spread over the holders (several in flight); a failing holder is skipped.
    assemble(fetch, sb, repo, [&](uint64_t i) -> Status {
      auto range = site::chunk_range(sb->size, sb->chunk_size, i);
      for (size_t k = 0; k < holders.size(); ++k) {
        const auto& holder = holders[(i + k) % holders.size()];
        auto r = chunk_client_->fetch(holder.data_address, chunk_request(sb->digest, i, sb->chunk_size, sb->size),
                                      kHolderStall);
        if (!r || r->status() != wire::ChunkResponse::OK || r->data().size() != range.length) continue;
        if (::pwrite(sb->fd.get(), r->data().data(), range.length, static_cast<off_t>(range.offset)) ==
            static_cast<ssize_t>(range.length))
          return Status::Ok();
      }
      return Status{Errc::blob_unknown, "no peer could provide " + sb->digest.str()};
    });
  });
}

wire::ChunkResponse Mirror::serve_chunk(const wire::ChunkRequest& request) {
  wire::ChunkResponse response;
  auto digest = Digest::parse(request.digest());
  if (!digest || (request.chunk_size() == 0 && !request.stat())) {
    response.set_status(wire::ChunkResponse::FAILED);
    response.set_message("bad request");
    return response;
  }
  std::string data;
  if (request.stat()) {
    // Repository-scoped, like every blob read: a peer only admits what that repository holds.
    auto size = registry_.stat_blob(request.repo(), digest->str());
    response.set_status(size ? wire::ChunkResponse::OK : wire::ChunkResponse::MISSING);
    if (size) response.set_blob_size(*size);
    return response;
  }
  auto range = site::chunk_range(request.blob_size(), request.chunk_size(), request.index());
  if (auto blob = blobs_.open(*digest); blob && blob->size == request.blob_size()) {
    if (pread_all(blob->fd.get(), data, range.offset, range.length)) {
      response.set_data(std::move(data));
      return response;
    }
  }
  std::shared_ptr<SiteBlob> sb;
  {
    std::lock_guard lock(mu_);
    if (auto it = site_blobs_.find(digest->str()); it != site_blobs_.end()) sb = it->second;
  }
  Upstream* up = upstream_for(request.ns());
  if (!sb && request.fetch() && up && request.chunk_size() == chunk_size_) sb = site_blob(*digest, request.blob_size());
  if (sb && sb->chunk_size == request.chunk_size() && request.index() < sb->have.size()) {
    bool have;
    {
      std::lock_guard lock(sb->mu);
      have = sb->have[request.index()];
    }
    Status s = have ? Status::Ok() : Status{Errc::blob_unknown, "chunk not here"};
    if (!have && request.fetch() && up) s = chunk_from_upstream(*up, request.repo(), *sb, request.index());
    if (s && pread_all(sb->fd.get(), data, range.offset, range.length)) {
      response.set_data(std::move(data));
      return response;
    }
    response.set_status(request.fetch() ? wire::ChunkResponse::FAILED : wire::ChunkResponse::MISSING);
    response.set_message(s.message);
    return response;
  }
  response.set_status(wire::ChunkResponse::MISSING);
  return response;
}

}  // namespace ep
