// SiteTagObserver: the registry's and the HTTP API's reports to the site
// actor (tags written and deleted here, images pulled here), as messages;
// blob_listener: the blob store's (blobs stored and removed here).
#include <caf/send.hpp>
#include <chrono>
#include <string>
#include <unordered_map>

#include "actors/caf_types.h"
#include "actors/site_actor.h"

namespace ep::actors {

void SiteTagObserver::tag_written(const std::string& ns, const std::string& repo, const std::string& tag,
                                  const StoredManifest& manifest, const std::string& writer) {
  caf::anon_send(site_, tag_put_atom::value, ns, repo, tag, manifest.digest.str(), manifest.media_type, manifest.body,
                 writer);
}

void SiteTagObserver::tag_deleted(const std::string& ns, const std::string& repo, const std::string& tag,
                                  const std::string& writer) {
  caf::anon_send(site_, tag_del_atom::value, ns, repo, tag, writer);
}

void SiteTagObserver::image_pulled(const std::string& repo, const std::string& reference) {
  // As pins name images: repo:tag, or repo@digest (a digest holds a colon, a tag cannot).
  const char* separator = reference.find(':') == std::string::npos ? ":" : "@";
  std::string ref = repo + separator + reference;
  // Each request thread reports a reference at most once a second: a busy
  // image costs the site actor a message per second and thread, not one per
  // pull (the index records uses far more coarsely still). Thread-local, so
  // no lock on the request path; bounded by clearing.
  thread_local std::unordered_map<std::string, std::chrono::steady_clock::time_point> reported;
  const auto now = std::chrono::steady_clock::now();
  auto [it, fresh] = reported.try_emplace(ref, now);
  if (!fresh && now - it->second < std::chrono::seconds(1)) return;
  it->second = now;
  if (reported.size() > 4096) reported.clear();
  caf::anon_send(site_, pin_used_atom::value, std::move(ref));
}

std::function<void(const Digest&, bool)> blob_listener(caf::actor site) {
  return [site = std::move(site)](const Digest& digest, bool present) {
    caf::anon_send(site, blob_atom::value, site::holdings_key(digest.str()), present);
  };
}

}  // namespace ep::actors
