// SpaceGuard: admission of writes into the data dir. A write that would
// leave less than min-free-space is refused with out_of_space before any
// byte is written, so a full disk never takes a node's reads, its metadata
// (RocksDB) or its restart with it.
//
// Owned by the FsBlobStore; thread-safe (statvfs per call, an atomic flag).
// It says once in the log when the data dir becomes full and once when
// writes are admitted again, not once per refused request.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "base/error.h"

namespace ep {

class SpaceGuard {
 public:
  SpaceGuard(std::string dir, uint64_t min_free) : dir_(std::move(dir)), min_free_(min_free) {}

  // OK when `bytes` more still leave min-free-space; out_of_space otherwise.
  Status admit(uint64_t bytes);
  // Bytes an unprivileged writer may still use; UINT64_MAX if unknown.
  uint64_t free_bytes() const;
  uint64_t min_free() const { return min_free_; }
  // Free space is below min-free-space now (writes are refused).
  bool full() const { return free_bytes() < min_free_; }

 private:
  std::string dir_;
  uint64_t min_free_;
  std::atomic<bool> full_{false};  // as of the last admission, to log changes once
};

}  // namespace ep
