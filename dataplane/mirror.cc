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

namespace {
using Clock = std::chrono::steady_clock;

const std::vector<std::pair<std::string, std::string>> kManifestAccept = {
    {"Accept", std::string(media::kOciIndex) + ", " + std::string(media::kOciManifest) + ", " +
                   std::string(media::kDockerList) + ", " + std::string(media::kDockerManifest)}};

// Fetches from upstream running at once on this node; more wait their turn.
// Generous: the clients waiting on fetches are bounded by blocking-threads
// already, and a lower bound measured slower (bench/cold-blobs).
constexpr size_t kMaxFetchThreads = 512;
// Jobs obtaining chunks of site blobs at once (four per blob); more wait.
constexpr size_t kMaxChunkWorkers = 64;
// Disk writes of upstream fetches at once: each is one piece of a body.
constexpr size_t kMaxDiskWriters = 4;

Status not_cached(const Upstream& up, const std::string& what, const std::string& why) {
  return Status{Errc::manifest_unknown, what + " is not cached and upstream " + up.describe() + " is unavailable: " + why};
}
}  // namespace

Mirror::Mirror(Registry& registry, BlobStore& blobs, std::map<std::string, std::unique_ptr<Upstream>> upstreams,
               std::string default_ns, std::chrono::milliseconds tag_ttl)
    : registry_(registry), blobs_(blobs), upstreams_(std::move(upstreams)), default_ns_(std::move(default_ns)),
      tag_ttl_(tag_ttl),
      fetches_(std::make_unique<BlockingPool>(kMaxFetchThreads)),
      chunk_workers_(std::make_unique<BlockingPool>(kMaxChunkWorkers)),
      disk_(std::make_unique<BlockingPool>(kMaxDiskWriters)) {}

Mirror::~Mirror() {
  stopping_ = true;
  // Queued fetches run, see stopping_ and end; every fetch ends in one of
  // these pools' jobs, so none runs once both have stopped.
  fetches_->stop();
  chunk_workers_->stop();
  disk_->stop();
}

void Mirror::stop() {
  stopping_ = true;
  for (const auto& [ns, upstream] : upstreams_) upstream->cancel_requests();
  if (chunk_client_) chunk_client_->cancel_all();
  // Every fetch ends now, while the I/O pool that the clients waiting on
  // them post to still exists (the Node destroys it before the Mirror).
  fetches_->stop();
  chunk_workers_->stop();
  disk_->stop();
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

Result<StoredManifest> Mirror::manifest(Upstream& up, const std::string& repo, const std::string& reference) {
  if (auto s = validate_repository(repo); !s) return s;
  const std::string local = mirror_repo(up, repo);
  if (looks_like_digest(reference)) {
    auto m = registry_.get_manifest(local, reference);
    if (m || m.status().code != Errc::manifest_unknown) return m;
    if (!up.available()) return not_cached(up, reference, "backing off");
    return fetch_manifest(up, local, repo, reference, "");
  }
  if (auto s = validate_tag(reference); !s) return s;
  auto known = registry_.resolve_tag(local, reference);
  if (!known) return known.status();
  const std::string key = local + ":" + reference;
  {
    std::lock_guard lock(mu_);
    auto it = validated_.find(key);
    if (*known && it != validated_.end() && Clock::now() - it->second < tag_ttl_)
      return registry_.get_manifest(local, reference);
  }
  if (!up.available()) {
    if (*known) return registry_.get_manifest(local, reference);
    return not_cached(up, repo + ":" + reference, "backing off");
  }
  // One revalidation per tag at a time; clients holding a cached answer wait
  // only briefly for it, so a hanging upstream never stalls a pull.
  std::shared_ptr<Revalidation> rv;
  {
    std::lock_guard lock(mu_);
    auto& slot = revalidations_[key];
    if (!slot) {
      slot = std::make_shared<Revalidation>();
      rv = slot;
      // Called once, with the mutex held: releases the slot and its waiters.
      auto settle = [this, key, rv](Result<StoredManifest> result) {
        rv->result = std::move(result);
        rv->done = true;
        rv->cv.notify_all();
        revalidations_.erase(key);
      };
      const bool queued = fetches_->post([this, &up, local, repo, reference, known = *known, settle] {
        Result<StoredManifest> result = Status{Errc::io_error, "tag revalidation failed"};
        if (auto s = guarded("a tag revalidation", [&] {
              result = stopping_ ? Result<StoredManifest>(Status{Errc::upstream_unavailable, "node is stopping"})
                                 : revalidate_tag(up, local, repo, reference, known);
              return Status::Ok();
            });
            !s)
          result = s;
        std::lock_guard lock(mu_);
        settle(std::move(result));
      });
      if (!queued) settle(Status{Errc::upstream_unavailable, "node is stopping"});
    } else {
      rv = slot;
    }
  }
  std::unique_lock lock(mu_);
  auto wait = *known ? std::chrono::milliseconds(500) : std::chrono::milliseconds(60000);
  rv->cv.wait_for(lock, wait, [&] { return rv->done; });
  if (rv->done) return rv->result;
  lock.unlock();
  return registry_.get_manifest(local, reference);  // still revalidating: the last known answer
}

Result<StoredManifest> Mirror::revalidate_tag(Upstream& up, const std::string& local, const std::string& repo,
                                              const std::string& reference, std::optional<Digest> known) {
  auto serve_known = [&]() -> Result<StoredManifest> { return registry_.get_manifest(local, reference); };
  auto head = up.get(repo, "manifests/" + reference, "HEAD", kManifestAccept, nullptr, kMetadataTimeout);
  if (!head) {
    if (head.status().code != Errc::upstream_unavailable) return head.status();
    return known ? serve_known() : not_cached(up, repo + ":" + reference, head.status().message);
  }
  if (head->status == 404)
    return Status{Errc::manifest_unknown, "manifest unknown upstream " + up.describe() + ": " + repo + ":" + reference};
  if (head->status != 200) {
    if (known) return serve_known();
    return Status{Errc::upstream_unavailable,
                  "upstream " + up.describe() + " answered HTTP " + std::to_string(head->status) + " for " + repo};
  }
  auto remote = Digest::parse(head->header("docker-content-digest"));
  Result<StoredManifest> result = Status{Errc::manifest_unknown, ""};
  if (remote && known && *known == *remote) {
    result = serve_known();
  } else if (auto cached = remote ? registry_.get_manifest(local, remote->str()) : result; remote && cached) {
    auto s = registry_.put_mirrored_manifest(local, cached->digest, cached->media_type, cached->body, reference);
    if (!s) return s;
    if (registry_.observer()) registry_.observer()->tag_written(up.ns(), up.upstream_repo(repo), reference, *cached, "");
    result = std::move(cached);
  } else {
    result = fetch_manifest(up, local, repo, remote ? remote->str() : reference, reference);
  }
  if (result) {
    std::lock_guard lock(mu_);
    validated_[local + ":" + reference] = Clock::now();
  }
  return result;
}

Result<StoredManifest> Mirror::fetch_manifest(Upstream& up, const std::string& local, const std::string& repo,
                                              const std::string& reference, const std::string& tag) {
  auto got = up.get(repo, "manifests/" + reference, "GET", kManifestAccept, nullptr, kMetadataTimeout);
  if (!got) {
    if (got.status().code == Errc::upstream_unavailable) return not_cached(up, repo + "@" + reference, got.status().message);
    return got.status();
  }
  if (got->status == 404)
    return Status{Errc::manifest_unknown, "manifest unknown upstream " + up.describe() + ": " + repo + "@" + reference};
  if (got->status != 200)
    return Status{Errc::upstream_unavailable,
                  "upstream " + up.describe() + " answered HTTP " + std::to_string(got->status) + " for a manifest"};
  Digest digest = Digest::of(got->body);
  if (looks_like_digest(reference) && digest.str() != reference)
    return Status{Errc::upstream_unavailable,
                  "upstream " + up.describe() + " sent a manifest that does not match " + reference};
  auto content_type = got->header("content-type");
  auto info = parse_manifest(got->body, content_type);
  if (!info)
    return Status{Errc::upstream_unavailable, "upstream " + up.describe() + " sent an invalid manifest: " + info.status().message};
  if (auto s = registry_.put_mirrored_manifest(local, digest, info->media_type, got->body, tag); !s) return s;
  StoredManifest stored{digest, info->media_type, std::move(got->body)};
  if (!tag.empty() && registry_.observer()) registry_.observer()->tag_written(up.ns(), up.upstream_repo(repo), tag, stored, "");
  return stored;
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

Result<BlobSource> Mirror::blob(Upstream& up, const std::string& repo, const std::string& digest_text, bool head,
                                bool background) {
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
    if (peers_ && !peers_->live().empty() && !site_fetch_failed_recently(*digest)) {
      // In a site: from members that hold it completely (no uplink needed) ...
      if (auto holders = find_holders(local, *digest); !holders.peers.empty())
        if ((fetch = start_peer_fetch(local, *digest, std::move(holders), &up, repo))) return fetch;
      // ... else learn the size and fetch in chunks shared by all members.
      if (!up.available()) return unavailable();
      auto size = head_blob();
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
  auto size = fetch->wait_size(std::chrono::minutes(10));
  if (!size && joined && size.status().code == Errc::blob_unknown) {
    // The fetch we joined was for another repository, which lacks the blob
    // upstream; ours may have it.
    auto launched = launch();
    if (!launched) return launched.status();
    fetch = *launched;
    size = fetch->wait_size(std::chrono::minutes(10));
  }
  if (!size) return size.status();
  if (!background) note_client_fetch(fetch);
  return BlobSource{std::nullopt, fetch, *size};
}

bool Mirror::spawn_fetch(std::function<void()> run, const std::shared_ptr<InflightBlob>& fetch) {
  if (fetches_->post(std::move(run))) return true;
  inflight_.erase(fetch->digest().str());
  fetch->finish(Status{Errc::upstream_unavailable, "node is stopping"});
  return false;
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
