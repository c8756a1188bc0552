// Registry: the single-node OCI content model on top of KvStore and BlobStore.
//
// Owns the meaning of repositories, manifests, tags, blob links and
// referrers (layout in storage/keys.h). Content is global and deduplicated;
// a repository sees only what is linked into it, so deleting one repository's
// link never breaks another's. Thread-safe: every method may be called from
// any HTTP worker; each mutation is one atomic KvBatch. Inputs are validated
// here (names, tags, digests), so callers may pass raw request strings.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/digest.h"
#include "base/error.h"
#include "storage/blob_store.h"
#include "storage/kv_store.h"

namespace ep {

struct StoredManifest {
  Digest digest;
  std::string media_type;
  std::string body;  // the exact bytes that were pushed
};

struct PutManifestResult {
  Digest digest;
  std::optional<Digest> subject;
};

struct Page {
  std::vector<std::string> items;
  bool more = false;  // another page follows (emit a Link header)
};

// Told about every local tag change, so the site index can replicate it.
// `ns` is the upstream namespace ("" for pushed images) and `repo` the
// repository as that namespace knows it. Called on the writer's thread.
class TagObserver {
 public:
  virtual ~TagObserver() = default;
  // `writer`: the registry user who made the change ("" for the mirror).
  virtual void tag_written(const std::string& ns, const std::string& repo, const std::string& tag,
                           const StoredManifest& manifest, const std::string& writer) = 0;
  virtual void tag_deleted(const std::string& ns, const std::string& repo, const std::string& tag,
                           const std::string& writer) = 0;
  // A client pulled a manifest of `repo` (local repository) by `reference`.
  virtual void image_pulled(const std::string& repo, const std::string& reference) {}
};

// Splits "repo:tag" / "repo@digest" / "repo" (tag latest) into (repo, reference).
std::pair<std::string_view, std::string_view> split_reference(std::string_view ref);

// The local repository holding mirrored content of (namespace, upstream repo).
std::string mirror_repository(std::string_view ns, std::string_view upstream_repo);

class Registry {
 public:
  Registry(KvStore& kv, BlobStore& blobs) : kv_(kv), blobs_(blobs) {}

  // Set once at startup, before requests are served.
  void set_observer(TagObserver* observer) { observer_ = observer; }
  TagObserver* observer() const { return observer_; }
  // Tells the observer a client pulled `repo` by `reference` (auto-pins' last use).
  void note_pull(std::string_view repo, std::string_view reference) {
    if (observer_) observer_->image_pulled(std::string(repo), std::string(reference));
  }

  // reference: a tag or a digest.
  Result<StoredManifest> get_manifest(std::string_view repo, std::string_view reference);
  // `writer`: the registry user, recorded with the tag write in the site index.
  Result<PutManifestResult> put_manifest(std::string_view repo, std::string_view reference,
                                         std::string_view content_type, std::string_view body,
                                         const std::string& writer = "");
  // By digest: unlinks the manifest and every tag pointing at it. By tag: removes the tag.
  Status delete_manifest(std::string_view repo, std::string_view reference, const std::string& writer = "");

  Result<uint64_t> stat_blob(std::string_view repo, std::string_view digest);
  Result<OpenBlob> open_blob(std::string_view repo, std::string_view digest);
  // Last read of each blob since start (for LRU eviction); steady-clock ms.
  std::map<std::string, uint64_t> blob_access() const;
  Status delete_blob(std::string_view repo, std::string_view digest);
  // Links an existing blob into `repo` (after an upload or a mount).
  Status link_blob(std::string_view repo, const Digest& digest);
  // Cross-repository mount; blob_unknown when `from` does not hold the blob.
  // An empty `from` mounts any blob this node stores.
  Status mount_blob(std::string_view repo, std::string_view digest, std::string_view from);

  // Stores a manifest fetched from an upstream (already verified against its
  // digest) without requiring its blobs: they arrive on demand.
  Status put_mirrored_manifest(std::string_view repo, const Digest& digest, std::string_view media_type,
                               std::string_view body, std::string_view tag);
  // Site replication: a tag decided elsewhere (no observer call), and
  // manifest content that came with it (verified against its digest).
  Status apply_replicated_tag(std::string_view ns, std::string_view repo, std::string_view tag,
                              const std::optional<Digest>& digest);
  Status store_manifest_content(std::string_view digest, std::string_view media_type, std::string_view body);
  Result<StoredManifest> manifest_by_digest(const Digest& digest) { return load_manifest(digest); }

  // True when the image (manifest, its children and all their blobs) is
  // stored here completely. `ref` is "repo:tag" or "repo@digest".
  bool holds_image(std::string_view ref);
  // Digests of every blob an image references (whether stored or not);
  // nullopt when its manifest is unknown here. `sizes`, when given, gets
  // their descriptors' sizes in the same order.
  std::optional<std::vector<Digest>> image_blobs(std::string_view ref, std::vector<uint64_t>* sizes = nullptr);
  // Digests of every blob some stored manifest (any repository, tagged or
  // not) lists: what garbage collection must keep.
  Result<std::set<std::string>> referenced_blobs();

  // The digest a tag points at, if any.
  Result<std::optional<Digest>> resolve_tag(std::string_view repo, std::string_view tag);

  // n < 0: no limit.
  Result<Page> list_tags(std::string_view repo, long n, std::string_view last);
  Result<Page> catalog(long n, std::string_view last);
  // Returns the OCI image index JSON listing referrers of `subject`.
  Result<std::string> referrers(std::string_view repo, std::string_view subject, std::string_view artifact_type);

  Status validate_repo(std::string_view repo) const;

 private:
  // `digest_text` parsed, once `repo` is valid and links the blob; blob_unknown otherwise.
  Result<Digest> linked_blob(std::string_view repo, std::string_view digest_text);
  Result<bool> exists(const std::string& key);
  Result<StoredManifest> load_manifest(const Digest& digest);

  KvStore& kv_;
  BlobStore& blobs_;
  TagObserver* observer_ = nullptr;
  mutable std::mutex access_mu_;
  std::map<std::string, uint64_t> access_;
};

}  // namespace ep
