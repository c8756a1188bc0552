// Upload sessions: ordering, verification, abandonment and resume.
#include <catch2/catch.hpp>

#include "registry/registry.h"
#include "registry/uploads.h"

using namespace ep;

namespace {
struct Fixture {
  std::unique_ptr<KvStore> kv = make_memory_kv_store();
  std::unique_ptr<BlobStore> blobs = make_memory_blob_store();
  Registry registry{*kv, *blobs};
  Uploads uploads{*kv, *blobs, registry};

  void append(const std::string& id, const std::string& data, std::optional<uint64_t> start) {
    auto a = uploads.append("r", id, start);
    REQUIRE(a.ok());
    REQUIRE((*a)->write(data.data(), data.size()).ok());
    REQUIRE((*a)->commit().ok());
  }
};
}  // namespace

TEST_CASE("chunks must arrive in order") {
  Fixture f;
  auto id = f.uploads.start("r")->id;
  f.append(id, "hello ", 0);
  CHECK(f.uploads.append("r", id, 0).status().code == Errc::range_invalid);
  CHECK(f.uploads.append("r", id, 7).status().code == Errc::range_invalid);
  f.append(id, "world", 6);
  CHECK(f.uploads.status("r", id)->offset == 11);
  auto d = f.uploads.complete("r", id, Digest::of("hello world").str());
  REQUIRE(d.ok());
  CHECK(f.registry.stat_blob("r", d->str()).value() == 11);
  CHECK(f.uploads.status("r", id).status().code == Errc::blob_upload_unknown);
}

TEST_CASE("a wrong digest publishes nothing and ends the session") {
  Fixture f;
  auto id = f.uploads.start("r")->id;
  f.append(id, "data", std::nullopt);
  CHECK(f.uploads.complete("r", id, Digest::of("other").str()).status().code == Errc::digest_invalid);
  CHECK(f.registry.stat_blob("r", Digest::of("data").str()).status().code == Errc::blob_unknown);
  CHECK(f.blobs->stat(Digest::of("data")).status().code == Errc::blob_unknown);
  CHECK(f.uploads.status("r", id).status().code == Errc::blob_upload_unknown);
}

TEST_CASE("an abandoned append is rolled back to the committed offset") {
  Fixture f;
  auto id = f.uploads.start("r")->id;
  f.append(id, "good", 0);
  {
    auto a = f.uploads.append("r", id, 4);
    REQUIRE(a.ok());
    REQUIRE((*a)->write("garbage", 7).ok());
    // a client disconnect: destroyed without commit
  }
  CHECK(f.uploads.status("r", id)->offset == 4);
  f.append(id, "!", 4);
  CHECK(f.uploads.complete("r", id, Digest::of("good!").str()).ok());
}

TEST_CASE("only one writer per session") {
  Fixture f;
  auto id = f.uploads.start("r")->id;
  auto a = f.uploads.append("r", id, 0);
  REQUIRE(a.ok());
  CHECK(f.uploads.append("r", id, 0).status().code == Errc::busy);
}

TEST_CASE("a session continues after a restart (hash rebuilt from the staged file)") {
  Fixture f;
  auto id = f.uploads.start("r")->id;
  f.append(id, "first half ", 0);
  // A new Uploads over the same stores has no in-memory hash state.
  Uploads restarted(*f.kv, *f.blobs, f.registry);
  restarted.recover();
  CHECK(restarted.status("r", id)->offset == 11);
  auto a = restarted.append("r", id, 11);
  REQUIRE(a.ok());
  REQUIRE((*a)->write("second", 6).ok());
  REQUIRE((*a)->commit().ok());
  CHECK(restarted.complete("r", id, Digest::of("first half second").str()).ok());
}

TEST_CASE("sessions belong to their repository; recover drops orphaned files") {
  Fixture f;
  auto id = f.uploads.start("r")->id;
  CHECK(f.uploads.status("other", id).status().code == Errc::blob_upload_unknown);
  CHECK(f.uploads.status("r", "no-such-id").status().code == Errc::blob_upload_unknown);
  REQUIRE(f.blobs->open_staging("orphan-1", true).ok());
  f.uploads.recover();
  auto staged = f.blobs->list_staging();
  CHECK(staged == std::vector<std::string>{id});
  REQUIRE(f.uploads.cancel("r", id).ok());
  CHECK(f.blobs->list_staging().empty());
  CHECK(f.uploads.status("r", id).status().code == Errc::blob_upload_unknown);
}
