// SpaceGuard: admission of writes into the data dir. A write that would
// leave less than min-free-space is refused with out_of_space before any
// byte is written, so a full disk never takes a node's reads, its metadata
// (RocksDB) or its restart with it.
//
// Before refusing, a caller that may block asks the room maker (the
// replicator: it evicts cached blobs as storage-budget would) to free the
// shortfall, then admits again.
//
// Owned by the FsBlobStore; thread-safe (statvfs per call, an atomic flag,
// the room maker behind a mutex).
// It says once in the log when the data dir becomes full and once when
// writes are admitted again, not once per refused request.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

#include "base/error.h"

namespace ep {

// Frees about `bytes` of blob storage (evicting what may be fetched again);
// returns the bytes freed. May block on the disk.
using RoomMaker = std::function<uint64_t(uint64_t bytes)>;

class SpaceGuard {
 public:
  SpaceGuard(std::string dir, uint64_t min_free) : dir_(std::move(dir)), min_free_(min_free) {}

  // OK when `bytes` more still leave min-free-space; out_of_space otherwise.
  Status admit(uint64_t bytes);
  // admit(), but first asks the room maker to free the shortfall. Blocks:
  // for the blocking pool and background threads, never an I/O thread.
  Status admit_making_room(uint64_t bytes);
  void set_room_maker(RoomMaker maker);  // empty: none (at stop)
  bool can_make_room() const;
  // Bytes an unprivileged writer may still use; UINT64_MAX if unknown.
  uint64_t free_bytes() const;
  uint64_t min_free() const { return min_free_; }
  // Free space is below min-free-space now (writes are refused).
  bool full() const { return free_bytes() < min_free_; }

 private:
  std::string dir_;
  uint64_t min_free_;
  std::atomic<bool> full_{false};  // as of the last admission, to log changes once
  mutable std::mutex maker_mu_;    // guards room_maker_
  RoomMaker room_maker_;
};

}  // namespace ep
