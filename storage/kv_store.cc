#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <map>
#include <mutex>
#include <shared_mutex>

#include "storage/kv_store.h"

namespace ep {

namespace {

class RocksKvStore final : public KvStore {
 public:
  explicit RocksKvStore(std::unique_ptr<rocksdb::DB> db) : db_(std::move(db)) {}

  Result<std::optional<std::string>> get(std::string_view key) override {
    std::string value;
    auto s = db_->Get(rocksdb::ReadOptions(), rocksdb::Slice(key.data(), key.size()), &value);
    if (s.IsNotFound()) return std::optional<std::string>();
    if (!s.ok()) return Status{Errc::io_error, "metadata read failed: " + s.ToString()};
    return std::optional<std::string>(std::move(value));
  }

  Status write(const KvBatch& batch) override {
    rocksdb::WriteBatch wb;
    for (const auto& op : batch.ops()) {
      if (op.value)
        wb.Put(op.key, *op.value);
      else
        wb.Delete(op.key);
    }
    auto s = db_->Write(rocksdb::WriteOptions(), &wb);
    if (!s.ok()) return Status{Errc::io_error, "metadata write failed: " + s.ToString()};
    return Status::Ok();
  }

  Status scan(std::string_view prefix, std::string_view start_after, const KvVisitor& visit) override {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
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

 private:
  std::unique_ptr<rocksdb::DB> db_;
};

class MemoryKvStore final : public KvStore {
 public:
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
  std::shared_mutex mu_;
  std::map<std::string, std::string, std::less<>> map_;
};

}  // namespace

Result<std::unique_ptr<KvStore>> open_rocks_kv_store(const std::string& path) {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.IncreaseParallelism(2);
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(32 << 20);
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(options, path, &raw);
  if (!s.ok()) return Status{Errc::io_error, "cannot open metadata database " + path + ": " + s.ToString()};
  return std::unique_ptr<KvStore>(new RocksKvStore(std::unique_ptr<rocksdb::DB>(raw)));
}

std::unique_ptr<KvStore> make_memory_kv_store() { return std::make_unique<MemoryKvStore>(); }

}  // namespace ep
