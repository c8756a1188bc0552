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
#include <optional>
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

class Registry {
 public:
  Registry(KvStore& kv, BlobStore& blobs) : kv_(kv), blobs_(blobs) {}

  // reference: a tag or a digest.
  Result<StoredManifest> get_manifest(std::string_view repo, std::string_view reference);
  Result<PutManifestResult> put_manifest(std::string_view repo, std::string_view reference,
                                         std::string_view content_type, std::string_view body);
  // By digest: unlinks the manifest and every tag pointing at it. By tag: removes the tag.
  Status delete_manifest(std::string_view repo, std::string_view reference);

  Result<uint64_t> stat_blob(std::string_view repo, std::string_view digest);
  Result<OpenBlob> open_blob(std::string_view repo, std::string_view digest);
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
  // The digest a tag points at, if any.
  Result<std::optional<Digest>> resolve_tag(std::string_view repo, std::string_view tag);

  // n < 0: no limit.
  Result<Page> list_tags(std::string_view repo, long n, std::string_view last);
  Result<Page> catalog(long n, std::string_view last);
  // Returns the OCI image index JSON listing referrers of `subject`.
  Result<std::string> referrers(std::string_view repo, std::string_view subject, std::string_view artifact_type);

  Status validate_repo(std::string_view repo) const;

 private:
  Result<bool> exists(const std::string& key);
  Result<StoredManifest> load_manifest(const Digest& digest);

  KvStore& kv_;
  BlobStore& blobs_;
};

}  // namespace ep
