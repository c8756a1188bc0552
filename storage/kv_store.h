// KvStore: the small ordered key-value interface all metadata goes through.
//
// Implementations: RocksKvStore (RocksDB on disk, the product) and
// MemoryKvStore (a std::map, for unit tests and the simulation). Both are
// thread-safe; a KvBatch is applied atomically. Key layout: storage/keys.h.
// A KvReader reads; snapshot() gives one frozen at a moment, for readers
// that must see several keys consistently while writers go on (fsck).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace ep {

class KvBatch {
 public:
  void put(std::string key, std::string value) { ops_.push_back({std::move(key), std::move(value)}); }
  void del(std::string key) { ops_.push_back({std::move(key), std::nullopt}); }
  bool empty() const { return ops_.empty(); }
  struct Op {
    std::string key;
    std::optional<std::string> value;  // nullopt: delete
  };
  const std::vector<Op>& ops() const { return ops_; }

 private:
  std::vector<Op> ops_;
};

// Called for each key in order; return false to stop the scan.
using KvVisitor = std::function<bool(std::string_view key, std::string_view value)>;

class KvReader {
 public:
  virtual ~KvReader() = default;
  virtual Result<std::optional<std::string>> get(std::string_view key) = 0;
  // Visits keys starting with `prefix` that sort strictly after `start_after`
  // (which must itself start with `prefix`, or be empty for "from the start").
  virtual Status scan(std::string_view prefix, std::string_view start_after, const KvVisitor& visit) = 0;
};

class KvStore : public KvReader {
 public:
  virtual Status write(const KvBatch& batch) = 0;
  // The store as it is now: later writes are not seen through it. It must
  // not outlive the store.
  virtual std::unique_ptr<KvReader> snapshot() = 0;
};

// Writes are refused (out_of_space) while less than `min_free` bytes are
// free where `path` lives, before RocksDB sees them.
Result<std::unique_ptr<KvStore>> open_rocks_kv_store(const std::string& path, uint64_t min_free = 0);
std::unique_ptr<KvStore> make_memory_kv_store();

}  // namespace ep
