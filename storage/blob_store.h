// BlobStore: complete blobs named by digest, plus a staging area for uploads.
//
// Invariant: a blob is visible through stat()/open() only once it is complete
// and its content was verified against its digest by the caller; commit of a
// staged file is an atomic rename, so a crash at any moment leaves either no
// blob or the whole blob. Staged files are private to their upload and are
// never served. Implementations are thread-safe.
//   FsBlobStore     <data-dir>/blobs/sha256/<2 hex>/<hex>, <data-dir>/uploads/<id>
//   MemoryBlobStore memfd-backed, for unit tests and the simulation.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/digest.h"
#include "base/error.h"
#include "base/fd.h"
#include "storage/space_guard.h"  // RoomMaker

namespace ep {

struct OpenBlob {
  UniqueFd fd;  // readable with pread/sendfile
  uint64_t size = 0;
};

class BlobStore {
 public:
  virtual ~BlobStore() = default;
  virtual Result<uint64_t> stat(const Digest& digest) = 0;  // blob_unknown if absent
  virtual Result<OpenBlob> open(const Digest& digest) = 0;
  virtual Status remove(const Digest& digest) = 0;
  // Moves a blob that failed verification out of the store (kept aside for
  // the operator under data-dir/quarantine); it is fetched again on demand.
  virtual Status quarantine(const Digest& digest) = 0;
  virtual uint64_t used_bytes() const = 0;
  // Every complete blob with its size.
  virtual std::vector<std::pair<Digest, uint64_t>> list() = 0;

  // Admission (storage/space_guard.h): OK when `bytes` more may be written
  // and still leave min-free-space, out_of_space otherwise. New staging
  // files are admitted the same way.
  virtual Status admit(uint64_t bytes) = 0;
  // admit(), after asking the room maker (set_room_maker) to free the
  // shortfall by evicting cached blobs. Blocks: never on an I/O thread.
  virtual Status admit_making_room(uint64_t bytes) = 0;
  virtual void set_room_maker(RoomMaker maker) = 0;
  virtual bool can_make_room() const = 0;
  virtual uint64_t free_bytes() const = 0;  // UINT64_MAX when unknown
  virtual bool full() const = 0;            // free space is below min-free-space now

  // Opens (optionally creating) the staged file of upload `id`, read-write.
  virtual Result<UniqueFd> open_staging(std::string_view id, bool create) = 0;
  virtual Status remove_staging(std::string_view id) = 0;
  virtual std::vector<std::string> list_staging() = 0;
  // Told of each blob that becomes present (a commit_staging that stored
  // it) or absent (remove, quarantine), after the change, on the thread
  // that made it. Set once, before the store is shared between threads.
  using Listener = std::function<void(const Digest&, bool present)>;
  virtual void set_listener(Listener listener) = 0;
  // Publishes staged `id` as blob `digest`; the caller verified the content.
  // If the blob already exists the staged copy is dropped (deduplication).
  virtual Status commit_staging(std::string_view id, const Digest& digest) = 0;
};

Result<std::unique_ptr<BlobStore>> open_fs_blob_store(const std::string& data_dir, uint64_t min_free_space = 0);
std::unique_ptr<BlobStore> make_memory_blob_store();

}  // namespace ep
