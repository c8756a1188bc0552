// Mirror: manifests from upstream without holding a thread. A tag is
// revalidated (a HEAD, a GET if it moved) at most once per tag-ttl and one
// at a time, as the revalidation actor decides (TagRevalidations); clients
// holding a cached answer wait for it only briefly, so a hanging upstream
// never stalls a pull. Requests run on the I/O pool, registry writes and
// the reads a waiter needs on the disk pool.
#include "base/names.h"
#include "dataplane/mirror.h"
#include "registry/manifest.h"

namespace ep {

namespace {
const std::vector<std::pair<std::string, std::string>> kManifestAccept = {
    {"Accept", std::string(media::kOciIndex) + ", " + std::string(media::kOciManifest) + ", " +
                   std::string(media::kDockerList) + ", " + std::string(media::kDockerManifest)}};

// How long a client waits for a tag's revalidation: briefly when a digest
// is cached (then it is served), long when there is nothing to serve.
constexpr std::chrono::milliseconds kPatienceKnown{500};
constexpr std::chrono::milliseconds kPatienceUnknown{60000};

Status not_cached(const Upstream& up, const std::string& what, const std::string& why) {
  return Status{Errc::manifest_unknown, what + " is not cached and upstream " + up.describe() + " is unavailable: " + why};
}
}  // namespace

void Mirror::set_revalidations(std::unique_ptr<TagRevalidations> revalidations) {
  revalidations_ = std::move(revalidations);
}

void Mirror::on_disk_pool(std::function<void()> work, const std::function<void(Status)>& refused) {
  if (!disk_->post(std::move(work))) refused(Status::Stopping());
}

void Mirror::note_declared_sizes(const StoredManifest& manifest) {
  auto info = parse_manifest(manifest.body, manifest.media_type);
  if (!info) return;
  std::lock_guard lock(mu_);
  if (declared_sizes_.size() + info->blobs.size() > kMaxDeclaredSizes) declared_sizes_.clear();
  for (size_t i = 0; i < info->blobs.size() && i < info->blob_sizes.size(); ++i)
    if (info->blob_sizes[i] > 0) declared_sizes_[info->blobs[i].str()] = info->blob_sizes[i];
}

std::optional<uint64_t> Mirror::declared_size(const Digest& digest) {
  std::lock_guard lock(mu_);
  auto it = declared_sizes_.find(digest.str());
  if (it == declared_sizes_.end()) return std::nullopt;
  return it->second;
}

void Mirror::manifest_async(Upstream& up, const std::string& repo, const std::string& reference,
                            ManifestHandler served) {
  // What a client is given, it fetches next: the sizes it declares are kept.
  ManifestHandler done = [this, served = std::move(served)](Result<StoredManifest> m) {
    if (m) note_declared_sizes(*m);
    served(std::move(m));
  };
  if (auto s = validate_repository(repo); !s) return done(s);
  const std::string local = mirror_repo(up, repo);
  if (looks_like_digest(reference)) {
    auto m = registry_.get_manifest(local, reference);
    if (m || m.status().code != Errc::manifest_unknown) return done(std::move(m));
    if (!up.available()) return done(not_cached(up, reference, "backing off"));
    return fetch_manifest_async(up, local, repo, reference, "", std::move(done));
  }
  if (auto s = validate_tag(reference); !s) return done(s);
  auto known = registry_.resolve_tag(local, reference);
  if (!known) return done(known.status());
  auto serve_known = [this, local, reference, done] {
    on_disk_pool([this, local, reference, done] { done(registry_.get_manifest(local, reference)); }, done);
  };
  if (!up.available()) {
    if (*known) return serve_known();
    return done(not_cached(up, repo + ":" + reference, "backing off"));
  }
  if (!revalidations_) return done(Status{Errc::upstream_unavailable, "the node is starting or stopping"});
  auto run = [this, &up, local, repo, reference, known = *known](std::function<void(TagRevalidations::Outcome)> end) {
    revalidate_async(up, local, repo, reference, known, std::move(end));
  };
  auto waiter = [done, serve_known](TagRevalidations::Outcome outcome) {
    if (!outcome) return serve_known();
    done(*outcome);
  };
  revalidations_->ask(local + ":" + reference, known->has_value(), *known ? kPatienceKnown : kPatienceUnknown, run,
                      waiter);
}

// The outcome is null when the known digest is to be served without the tag
// counting as revalidated (the upstream failed).
void Mirror::revalidate_async(Upstream& up, const std::string& local, const std::string& repo,
                              const std::string& reference, std::optional<Digest> known,
                              std::function<void(TagRevalidations::Outcome)> end) {
  auto finish = [end](Result<StoredManifest> r) {
    end(std::make_shared<const Result<StoredManifest>>(std::move(r)));
  };
  auto on_head = [this, &up, local, repo, reference, known, end, finish](Result<HttpResponse> head) {
    if (!head) {
      if (head.status().code != Errc::upstream_unavailable) return finish(head.status());
      return known ? end(nullptr) : finish(not_cached(up, repo + ":" + reference, head.status().message));
    }
    if (head->status == 404)
      return finish(Status{Errc::manifest_unknown, "manifest unknown upstream " + up.describe() + ": " + repo + ":" + reference});
    if (head->status != 200) {
      if (known) return end(nullptr);
      return finish(Status{Errc::upstream_unavailable, "upstream " + up.describe() + " answered HTTP " +
                                                           std::to_string(head->status) + " for " + repo});
    }
    auto remote = Digest::parse(head->header("docker-content-digest"));
    if (!remote) return fetch_manifest_async(up, local, repo, reference, reference, finish);
    // Registry reads and writes: on the disk pool.
    on_disk_pool(
        [this, &up, local, repo, reference, known, remote = *remote, finish] {
          auto cached = registry_.get_manifest(local, remote.str());
          if (!cached) return fetch_manifest_async(up, local, repo, remote.str(), reference, finish);
          if (known && *known == remote) return finish(std::move(cached));
          // The tag moved upstream to a manifest cached here already.
          if (auto s = registry_.put_mirrored_manifest(local, cached->digest, cached->media_type, cached->body, reference); !s)
            return finish(s);
          if (registry_.observer()) registry_.observer()->tag_written(up.ns(), up.upstream_repo(repo), reference, *cached, "");
          finish(std::move(cached));
        },
        finish);
  };
  up.async_get(repo, "manifests/" + reference, "HEAD", kManifestAccept, nullptr, kMetadataTimeout, on_head);
}

void Mirror::fetch_manifest_async(Upstream& up, const std::string& local, const std::string& repo,
                                  const std::string& reference, const std::string& tag, ManifestHandler done) {
  auto on_response = [this, &up, local, repo, reference, tag, done](Result<HttpResponse> got) {
    if (!got) {
      if (got.status().code == Errc::upstream_unavailable) return done(not_cached(up, repo + "@" + reference, got.status().message));
      return done(got.status());
    }
    if (got->status == 404)
      return done(Status{Errc::manifest_unknown, "manifest unknown upstream " + up.describe() + ": " + repo + "@" + reference});
    if (got->status != 200)
      return done(Status{Errc::upstream_unavailable,
                         "upstream " + up.describe() + " answered HTTP " + std::to_string(got->status) + " for a manifest"});
    Digest digest = Digest::of(got->body);
    if (looks_like_digest(reference) && digest.str() != reference)
      return done(Status{Errc::upstream_unavailable,
                         "upstream " + up.describe() + " sent a manifest that does not match " + reference});
    auto info = parse_manifest(got->body, got->header("content-type"));
    if (!info)
      return done(Status{Errc::upstream_unavailable,
                         "upstream " + up.describe() + " sent an invalid manifest: " + info.status().message});
    auto stored = std::make_shared<StoredManifest>(StoredManifest{digest, info->media_type, std::move(got->body)});
    on_disk_pool(
        [this, &up, local, repo, tag, stored, done] {
          if (auto s = registry_.put_mirrored_manifest(local, stored->digest, stored->media_type, stored->body, tag); !s)
            return done(s);
          if (!tag.empty() && registry_.observer())
            registry_.observer()->tag_written(up.ns(), up.upstream_repo(repo), tag, *stored, "");
          done(std::move(*stored));
        },
        done);
  };
  up.async_get(repo, "manifests/" + reference, "GET", kManifestAccept, nullptr, kMetadataTimeout, on_response);
}

}  // namespace ep
