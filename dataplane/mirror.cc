#include "dataplane/mirror.h"

#include "base/log.h"
#include "base/file_io.h"
#include "dataplane/site_blob.h"

#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <thread>

#include "base/names.h"
#include "registry/manifest.h"

namespace ep {

namespace site_fetch {
std::optional<std::string> random_id(const std::string& prefix) {
  auto hex = random_hex(12);
  if (!hex) return std::nullopt;
  return prefix + *hex;
}
}  // namespace site_fetch

using site_fetch::random_id;

Mirror::Mirror(Registry& registry, BlobStore& blobs, std::map<std::string, std::unique_ptr<Upstream>> upstreams,
               std::string default_ns, MirrorPools pools)
    : registry_(registry), blobs_(blobs), upstreams_(std::move(upstreams)), default_ns_(std::move(default_ns)),
      chunk_workers_(std::make_unique<BlockingPool>(pools.chunk_threads)),
      disk_(std::make_unique<BlockingPool>(pools.disk_threads)) {}

Mirror::~Mirror() {
  stopping_ = true;
  // Queued jobs run, see stopping_ and end. A site fetch ends in a chunk
  // job; an upstream fetch on the I/O pool, which has stopped by now.
  chunk_workers_->stop();
  disk_->stop();
}

void Mirror::stop() {
  stopping_ = true;
  for (const auto& [ns, upstream] : upstreams_) upstream->cancel_requests();
  if (chunk_client_) chunk_client_->cancel_all();
  // Every fetch ends now, while the I/O pool that the clients waiting on
  // them post to still exists (the Node destroys it before the Mirror).
  chunk_workers_->stop();
  disk_->stop();
  // An upstream fetch ends on the I/O pool, which may stop before its
  // cancellation ran: its clients are released here, whatever comes later.
  std::vector<std::shared_ptr<InflightBlob>> running;
  {
    std::lock_guard lock(mu_);
    for (const auto& [digest, weak] : inflight_)
      if (auto fetch = weak.lock()) running.push_back(std::move(fetch));
  }
  for (const auto& fetch : running) fetch->finish(Status::Stopping());
}

Upstream* Mirror::upstream_for(const std::string& ns) const {
  auto it = upstreams_.find(ns.empty() ? default_ns_ : ns);
  return it == upstreams_.end() ? nullptr : it->second.get();
}

std::string Mirror::mirror_repo(const Upstream& upstream, const std::string& repo) const {
  return mirror_repository(upstream.ns(), upstream.upstream_repo(repo));
}

bool Mirror::site_fetch_failed_recently(const Digest& digest) {
  std::lock_guard lock(mu_);
  auto it = site_fetch_failed_.find(digest.str());
  if (it == site_fetch_failed_.end()) return false;
  if (std::chrono::steady_clock::now() - it->second < std::chrono::minutes(10)) return true;
  site_fetch_failed_.erase(it);
  return false;
}

const Upstream* Mirror::cache_owner(const std::string& repo) const {
  for (const auto& [ns, up] : upstreams_)
    if (repo.rfind(mirror_repository(ns, ""), 0) == 0) return up.get();
  return nullptr;
}

namespace {
// Drops fetches that ended (or are gone) from a list of client-awaited ones.
void prune_ended(std::vector<std::weak_ptr<InflightBlob>>& fetches) {
  fetches.erase(std::remove_if(fetches.begin(), fetches.end(),
                               [](const auto& w) {
                                 auto f = w.lock();
                                 return !f || f->done();
                               }),
                fetches.end());
}
}  // namespace

void Mirror::note_client_fetch(const std::shared_ptr<InflightBlob>& fetch) {
  std::lock_guard lock(mu_);
  prune_ended(client_fetches_);  // bounded by the fetches running now
  client_fetches_.push_back(fetch);
}

bool Mirror::client_fetch_running() {
  std::lock_guard lock(mu_);
  prune_ended(client_fetches_);
  return !client_fetches_.empty();
}

Result<BlobSource> Mirror::blob(Upstream& up, const std::string& repo, const std::string& digest_text, bool head) {
  if (auto s = validate_repository(repo); !s) return s;
  auto digest = Digest::parse(digest_text);
  if (!digest) return digest.status();
  const std::string local = mirror_repo(up, repo);
  auto open_local = [&]() -> std::optional<BlobSource> {
    auto b = registry_.open_blob(local, digest->str());
    if (!b) return std::nullopt;
    uint64_t size = b->size;
    return BlobSource{std::move(*b), nullptr, size};
  };
  if (auto b = open_local()) return std::move(*b);
  if (blobs_.stat(*digest)) {  // stored for another repository: share it
    if (auto s = registry_.link_blob(local, *digest); !s) return s;
    if (auto b = open_local()) return std::move(*b);
  }
  std::string accept_ranges;  // the HEAD's Accept-Ranges
  auto head_blob = [&]() -> Result<uint64_t> {
    auto h = up.get(repo, "blobs/" + digest->str(), "HEAD", {}, nullptr, kMetadataTimeout);
    if (h) accept_ranges = h->header("accept-ranges");
    return blob_size_from_head(up, *digest, h);
  };
  auto unavailable = [&] {
    return Status{Errc::upstream_unavailable, "blob " + digest->str() + " is not cached and upstream " +
                                                  up.describe() + " is unavailable"};
  };
  auto launch = [&]() -> Result<std::shared_ptr<InflightBlob>> {
    // A fetch into a full data dir fails at once, with the reason (507).
    if (auto s = blobs_.admit_making_room(0); !s) return s;
    std::shared_ptr<InflightBlob> fetch;
    if (peers_ && peers_->any_live() && !site_fetch_failed_recently(*digest)) {
      // In a site: from members that hold it completely (no uplink needed) ...
      if (auto holders = find_holders(local, *digest); !holders.peers.empty())
        if ((fetch = start_peer_fetch(local, *digest, std::move(holders), &up, repo))) return fetch;
      // ... else learn the size and fetch in chunks shared by all members.
      if (!up.available()) return unavailable();
      const auto declared = declared_size(*digest);
      auto size = declared ? Result<uint64_t>(*declared) : head_blob();
      if (!size && size.status().code == Errc::blob_unknown) return size.status();
      if (size) {
        if (auto s = blobs_.admit_making_room(*size); !s) return s;
        fetch = start_site_fetch(up, local, repo, *digest, *size, serves_ranges(up, repo, *digest, accept_ranges));
      }
    }
    if (!fetch && !up.available()) return unavailable();
    if (!fetch) fetch = start_fetch(up, local, repo, *digest);
    if (!fetch) return Status{Errc::io_error, "cannot stage a blob fetch"};
    return fetch;
  };
  std::shared_ptr<InflightBlob> fetch;
  {
    std::lock_guard lock(mu_);
    if (auto it = inflight_.find(digest->str()); it != inflight_.end()) fetch = it->second.lock();
  }
  const bool joined = fetch != nullptr;
  if (!fetch) {
    if (head) {
      if (!up.available()) return unavailable();
      auto size = head_blob();
      if (!size) return size.status();
      return BlobSource{std::nullopt, nullptr, *size};
    }
    auto launched = launch();
    if (!launched) return launched.status();
    fetch = *launched;
  }
  // Its size is waited for by callback (blob_on_pool, which notes a
  // client's fetch, or the replicator's when_done).
  return BlobSource{std::nullopt, fetch, 0, /*size_pending=*/true, joined};
}

Result<uint64_t> Mirror::blob_size_from_head(const Upstream& up, const Digest& digest,
                                             const Result<HttpResponse>& h) {
  if (!h) return h.status();
  if (h->status == 404) return Status{Errc::blob_unknown, "blob unknown upstream " + up.describe() + ": " + digest.str()};
  if (h->status != 200 || !h->content_length)
    return Status{Errc::upstream_unavailable,
                  "upstream " + up.describe() + " answered HTTP " + std::to_string(h->status) + " for a blob"};
  return *h->content_length;
}

void Mirror::finish_fetch(const std::shared_ptr<InflightBlob>& blob, const Status& outcome) {
  if (!outcome && !stopping_)  // what the waiting clients were told, for the operator too
    log_warning("mirror", "fetch of " + blob->digest().str() + " failed: " + outcome.message);
  {
    std::lock_guard lock(mu_);
    if (auto it = inflight_.find(blob->digest().str()); it != inflight_.end() && it->second.lock() == blob)
      inflight_.erase(it);
  }
  blob->finish(outcome);
}

}  // namespace ep
