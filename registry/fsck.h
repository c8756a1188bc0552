// fsck: checks what this node stores against itself, as `epctl fsck` asks.
//  - every stored blob is re-hashed against its digest;
//  - every manifest linked into a repository has its body, the body hashes
//    to its digest, and each blob it lists is linked and stored (a mirror's
//    repositories excepted: their blobs are a cache, fetched on demand);
//  - every tag names a manifest linked into its repository.
// With repair, corrupt blobs are quarantined: moved aside under
// data-dir/quarantine and out of the store, so the next pull or the
// replicator fetches them again from peers or the upstream. Nothing else
// can be repaired locally; it is reported.
//
// Runs on the admin API's pool; reads the stores directly (both are
// thread-safe), the metadata through one snapshot so that writes racing it
// (replication) are seen whole or not at all. Hashes every byte: takes as
// long as reading the disk.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "storage/blob_store.h"
#include "storage/kv_store.h"

namespace ep {

struct FsckProblem {
  std::string kind;     // "corrupt blob", "missing blob", "missing manifest", "bad manifest", "dangling tag"
  std::string subject;  // a digest, or repo:tag / repo@digest
  std::string detail;
  bool repaired = false;
};

struct FsckReport {
  uint64_t blobs = 0, bytes_hashed = 0, manifests = 0, tags = 0;
  std::vector<FsckProblem> problems;
};

// `cache_repository` says whether a repository is a mirror's cache.
Result<FsckReport> fsck(KvStore& kv, BlobStore& blobs, bool repair,
                        const std::function<bool(std::string_view repo)>& cache_repository);

}  // namespace ep
