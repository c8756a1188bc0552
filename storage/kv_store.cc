#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <map>
#include <mutex>
#include <shared_mutex>

#include "storage/kv_store.h"

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <filesystem>

#include "base/log.h"
#include "storage/space_guard.h"

namespace ep {

namespace {

Result<std::optional<std::string>> rocks_get(rocksdb::DB& db, const rocksdb::ReadOptions& read, std::string_view key) {
  std::string value;
  auto s = db.Get(read, rocksdb::Slice(key.data(), key.size()), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return Status{Errc::io_error, "metadata read failed: " + s.ToString()};
  return std::optional<std::string>(std::move(value));
}

Status rocks_scan(rocksdb::DB& db, const rocksdb::ReadOptions& read, std::string_view prefix,
                  std::string_view start_after, const KvVisitor& visit) {
  std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(read));
  rocksdb::Slice pfx(prefix.data(), prefix.size());
  if (start_after.empty()) {
    it->Seek(pfx);
  } else {
    it->Seek(rocksdb::Slice(start_after.data(), start_after.size()));
    if (it->Valid() && it->key() == rocksdb::Slice(start_after.data(), start_after.size())) it->Next();
  }
  for (; it->Valid() && it->key().starts_with(pfx); it->Next()) {
    if (!visit(std::string_view(it->key().data(), it->key().size()),
               std::string_view(it->value().data(), it->value().size())))
      break;
  }
  if (!it->status().ok()) return Status{Errc::io_error, "metadata scan failed: " + it->status().ToString()};
  return Status::Ok();
}

// Reads through a RocksDB snapshot, released with the reader.
class RocksSnapshot final : public KvReader {
 public:
  explicit RocksSnapshot(rocksdb::DB& db) : db_(db), snapshot_(db.GetSnapshot()) { read_.snapshot = snapshot_; }
  ~RocksSnapshot() override { db_.ReleaseSnapshot(snapshot_); }
  RocksSnapshot(const RocksSnapshot&) = delete;
  RocksSnapshot& operator=(const RocksSnapshot&) = delete;

  Result<std::optional<std::string>> get(std::string_view key) override { return rocks_get(db_, read_, key); }
  Status scan(std::string_view prefix, std::string_view start_after, const KvVisitor& visit) override {
    return rocks_scan(db_, read_, prefix, start_after, visit);
  }

 private:
  rocksdb::DB& db_;
  const rocksdb::Snapshot* snapshot_;
  rocksdb::ReadOptions read_;
};

class RocksKvStore final : public KvStore {
 public:
  RocksKvStore(std::unique_ptr<rocksdb::DB> db, const std::string& path, uint64_t min_free)
      : db_(std::move(db)), space_(path, min_free) {}

  Result<std::optional<std::string>> get(std::string_view key) override {
    return rocks_get(*db_, rocksdb::ReadOptions(), key);
  }

  std::unique_ptr<KvReader> snapshot() override;

  Status write(const KvBatch& batch) override {
    rocksdb::WriteBatch wb;
    for (const auto& op : batch.ops()) {
      if (op.value)
        wb.Put(op.key, *op.value);
      else
        wb.Delete(op.key);
    }
    // A write RocksDB's log cannot take leaves its log writer failed, and
    // RocksDB 7.8 then asserts on a later write: never let it run out.
    if (space_.full())
      return Status{Errc::out_of_space, "out of storage space: metadata writes wait for " +
                                            std::to_string(space_.min_free() >> 20) + " MiB free in the data dir"};
    // After a failed write RocksDB refuses every write until resumed; try
    // that first (it succeeds once the cause, usually a full disk, is gone).
    // Only this recovery is serialized: writers otherwise go to RocksDB at
    // once, which groups them.
    if (failed_) {
      std::lock_guard lock(error_mu_);
      if (failed_ && db_->Resume().ok()) failed_ = false;
      if (failed_)
        return Status{Errc::out_of_space, "out of storage space: metadata writes wait for space (the last one failed)"};
    }
    auto s = db_->Write(rocksdb::WriteOptions(), &wb);
    if (s.ok()) return Status::Ok();
    failed_ = true;
    const bool full = s.IsNoSpace() || s.ToString().find("No space left") != std::string::npos;
    return full ? Status{Errc::out_of_space, "out of storage space: metadata write failed: " + s.ToString()}
                : Status{Errc::io_error, "metadata write failed: " + s.ToString()};
  }

  ~RocksKvStore() override {
    std::lock_guard lock(error_mu_);
    // A background write (flush, log) may have failed without a foreground
    // one failing: Resume() says whether the database is healthy now.
    if (db_->Resume().ok()) return;  // closed normally
    // Closing a RocksDB whose files failed to write aborts the process (an
    // assertion in its file writer). Everything acknowledged is in its log,
    // which the next start replays: leave the handle to the process's exit.
    log_warning("store", "the metadata store could not write its files (full disk?); it is left for the next "
                         "start to recover, not closed");
    (void)db_.release();
  }

  Status scan(std::string_view prefix, std::string_view start_after, const KvVisitor& visit) override {
    return rocks_scan(*db_, rocksdb::ReadOptions(), prefix, start_after, visit);
  }

 private:
  std::unique_ptr<rocksdb::DB> db_;
  SpaceGuard space_;  // only its statvfs check: the blob store's guard logs the disk's state
  std::mutex error_mu_;             // one Resume() at a time
  std::atomic<bool> failed_{false};  // a write failed and the database has not been resumed since
};

std::unique_ptr<KvReader> RocksKvStore::snapshot() { return std::make_unique<RocksSnapshot>(*db_); }

class MemoryKvStore final : public KvStore {
 public:
  MemoryKvStore() = default;
  MemoryKvStore(const MemoryKvStore& other) {
    std::shared_lock lock(other.mu_);
    map_ = other.map_;
  }
  std::unique_ptr<KvReader> snapshot() override { return std::make_unique<MemoryKvStore>(*this); }
  Result<std::optional<std::string>> get(std::string_view key) override {
    std::shared_lock lock(mu_);
    auto it = map_.find(key);
    if (it == map_.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  Status write(const KvBatch& batch) override {
    std::unique_lock lock(mu_);
    for (const auto& op : batch.ops()) {
      if (op.value)
        map_[op.key] = *op.value;
      else
        map_.erase(op.key);
    }
    return Status::Ok();
  }
  Status scan(std::string_view prefix, std::string_view start_after, const KvVisitor& visit) override {
    // Copy the range first so visitors may write to the store.
    std::vector<std::pair<std::string, std::string>> range;
    {
      std::shared_lock lock(mu_);
      auto it = start_after.empty() ? map_.lower_bound(prefix) : map_.upper_bound(start_after);
      for (; it != map_.end() && std::string_view(it->first).substr(0, prefix.size()) == prefix; ++it)
        range.emplace_back(it->first, it->second);
    }
    for (auto& [k, v] : range)
      if (!visit(k, v)) break;
    return Status::Ok();
  }

 private:
  mutable std::shared_mutex mu_;
  std::map<std::string, std::string, std::less<>> map_;
};

// RocksDB's own messages go to the node's log (warnings and errors; the rest
// at debug), not to a LOG file in the data dir: that file's writer aborts
// the process on its next line after a failed write (an assertion in
// RocksDB's file writer), which made a full disk fatal at start and at stop.
class NodeLogger final : public rocksdb::Logger {
 public:
  NodeLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::INFO_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override { Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap); }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    const LogLevel ours = level >= rocksdb::InfoLogLevel::ERROR_LEVEL  ? LogLevel::error
                          : level >= rocksdb::InfoLogLevel::WARN_LEVEL ? LogLevel::warning
                                                                       : LogLevel::debug;
    if (!log_enabled(ours)) return;
    char line[1024];
    int n = std::vsnprintf(line, sizeof line, format, ap);
    if (n < 0) return;
    std::string_view text(line, std::min<size_t>(static_cast<size_t>(n), sizeof line - 1));
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
    log_event(ours, "rocksdb", text);
  }
};

}  // namespace

Result<std::unique_ptr<KvStore>> open_rocks_kv_store(const std::string& path, uint64_t min_free) {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.info_log = std::make_shared<NodeLogger>();
  std::error_code ignored;  // made here, RocksDB need not report (at error level) that it was missing
  std::filesystem::create_directories(path, ignored);
  options.IncreaseParallelism(2);
  // After a full disk RocksDB resumes writes only once write_buffer_size
  // bytes are free (its recovery reserve; 64 MiB by default, more than a
  // small data dir may ever have). The metadata is small: 8 MiB memtables.
  options.write_buffer_size = 8 << 20;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(32 << 20);
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
#if defined(__SANITIZE_THREAD__)
  // ThreadSanitizer builds only: a write group's leader copies the other
  // writers' batches, handed over with RocksDB's atomics, which TSan cannot
  // see (RocksDB is not instrumented) and no suppression can name (the copy
  // is libstdc++'s). One batch per group; tests/sanitizers/tsan.supp has the rest.
  options.max_write_batch_group_size_bytes = 1;
#endif
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(options, path, &raw);
  if (!s.ok()) return Status{Errc::io_error, "cannot open metadata database " + path + ": " + s.ToString()};
  return std::unique_ptr<KvStore>(new RocksKvStore(std::unique_ptr<rocksdb::DB>(raw), path, min_free));
}

std::unique_ptr<KvStore> make_memory_kv_store() { return std::make_unique<MemoryKvStore>(); }

}  // namespace ep
