// ChunkDigests: the SHA-256 of every chunk of a complete blob, for peers that
// verify chunk by chunk what they fetch from this node.
//
// A blob's chunk digests are computed in the same pass that re-verifies the
// whole blob against its digest, so a chunk digest handed to a peer always
// comes from bytes that verified; a blob that no longer verifies (disk
// corruption) is reported and removed, never described to peers. Results
// are cached (bounded, least recently used out); one computation per blob
// at a time. Owned by the Mirror. Thread-safe.
#pragma once

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/digest.h"
#include "storage/blob_store.h"

namespace ep {

using ChunkDigestList = std::vector<std::string>;  // "sha256:..." per chunk, in order

class ChunkDigests {
 public:
  explicit ChunkDigests(BlobStore& blobs, size_t capacity = 1024) : blobs_(blobs), capacity_(capacity) {}

  // Digests of `digest`'s chunks of `chunk_size`. blob_unknown when absent;
  // io_error when the stored blob no longer matches its digest (it is
  // removed, so it is fetched again rather than served).
  Result<std::shared_ptr<const ChunkDigestList>> of(const Digest& digest, uint64_t chunk_size);
  // Records digests already known to come from verified bytes (a blob just
  // assembled from verified chunks and checked whole), sparing the re-read.
  void remember(const Digest& digest, uint64_t chunk_size, ChunkDigestList list);

 private:
  struct Entry {
    std::mutex compute;  // one computation at a time per blob
    std::shared_ptr<const ChunkDigestList> list;
    std::list<std::string>::iterator lru;
  };
  BlobStore& blobs_;
  size_t capacity_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Entry>> entries_;  // "<digest>/<chunk size>"
  std::list<std::string> lru_;                             // most recent first
  std::shared_ptr<Entry> slot(const std::string& key);     // caller holds mu_
};

// SHA-256 of one chunk, as a digest string.
std::string chunk_digest(std::string_view bytes);

}  // namespace ep
