// KvStore implementations agree; FsBlobStore publishes atomically.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <random>

#include "storage/blob_store.h"
#include "storage/kv_store.h"

using namespace ep;
namespace fs = std::filesystem;

namespace {
struct TempDir {
  fs::path path;
  TempDir() {
    std::random_device rd;
    path = fs::temp_directory_path() / ("ep-unit-" + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

std::vector<std::string> keys_after(KvReader& kv, const std::string& prefix, const std::string& after) {
  std::vector<std::string> keys;
  REQUIRE(kv.scan(prefix, after, [&](std::string_view k, std::string_view) {
                keys.emplace_back(k);
                return true;
              }).ok());
  return keys;
}
}  // namespace

TEST_CASE("RocksDB and in-memory KvStore behave the same") {
  TempDir dir;
  auto rocks = open_rocks_kv_store((dir.path / "db").string());
  REQUIRE(rocks.ok());
  auto memory = make_memory_kv_store();
  for (KvStore* kv : {rocks->get(), memory.get()}) {
    KvBatch batch;
    for (auto k : {std::string("t/a\0x", 5), std::string("t/a\0y", 5), std::string("t/a/b\0z", 7), std::string("u/1")})
      batch.put(k, "v");
    REQUIRE(kv->write(batch).ok());
    CHECK(kv->get("u/1")->value() == "v");
    CHECK_FALSE(kv->get("u/2")->has_value());
    auto prefix = std::string("t/a\0", 4);
    CHECK(keys_after(*kv, prefix, "").size() == 2);
    CHECK(keys_after(*kv, prefix, prefix + "x") == std::vector<std::string>{prefix + "y"});
    KvBatch del;
    del.del("u/1");
    REQUIRE(kv->write(del).ok());
    CHECK_FALSE(kv->get("u/1")->has_value());
  }
}

TEST_CASE("A KvStore snapshot keeps reading the store as it was when taken") {
  TempDir dir;
  auto rocks = open_rocks_kv_store((dir.path / "db").string());
  REQUIRE(rocks.ok());
  auto memory = make_memory_kv_store();
  for (KvStore* kv : {rocks->get(), memory.get()}) {
    KvBatch before;
    before.put("s/old", "1");
    before.put("s/gone", "1");
    REQUIRE(kv->write(before).ok());
    auto view = kv->snapshot();
    KvBatch after;
    after.put("s/new", "2");
    after.put("s/old", "2");
    after.del("s/gone");
    REQUIRE(kv->write(after).ok());
    CHECK(keys_after(*view, "s/", "") == std::vector<std::string>{"s/gone", "s/old"});
    CHECK(view->get("s/old")->value() == "1");
    CHECK_FALSE(view->get("s/new")->has_value());
    CHECK(keys_after(*kv, "s/", "") == std::vector<std::string>{"s/new", "s/old"});
    CHECK(kv->get("s/old")->value() == "2");
  }
}

TEST_CASE("RocksDB metadata survives reopening") {
  TempDir dir;
  {
    auto kv = open_rocks_kv_store((dir.path / "db").string());
    KvBatch b;
    b.put("k", "v");
    REQUIRE((*kv)->write(b).ok());
  }
  auto kv = open_rocks_kv_store((dir.path / "db").string());
  CHECK((*kv)->get("k")->value() == "v");
}

TEST_CASE("FsBlobStore: staged data is invisible until committed, then served") {
  TempDir dir;
  auto store = open_fs_blob_store(dir.path.string());
  REQUIRE(store.ok());
  auto& blobs = **store;
  auto d = Digest::of("content");
  auto fd = blobs.open_staging("id-1", true);
  REQUIRE(fd.ok());
  REQUIRE(::pwrite(fd->get(), "content", 7, 0) == 7);
  CHECK(blobs.stat(d).status().code == Errc::blob_unknown);
  REQUIRE(blobs.commit_staging("id-1", d).ok());
  CHECK(blobs.stat(d).value() == 7);
  CHECK(blobs.used_bytes() == 7);
  CHECK(blobs.list_staging().empty());
  // A second copy of the same content is dropped, not stored twice.
  auto again = blobs.open_staging("id-2", true);
  REQUIRE(::pwrite(again->get(), "content", 7, 0) == 7);
  REQUIRE(blobs.commit_staging("id-2", d).ok());
  CHECK(blobs.used_bytes() == 7);
  CHECK(blobs.open_staging("../etc", false).status().code == Errc::blob_upload_unknown);
  // Reopening counts what is stored.
  auto reopened = open_fs_blob_store(dir.path.string());
  CHECK((*reopened)->used_bytes() == 7);
}
