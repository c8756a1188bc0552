// PendingWrites (actors/pending_writes.h): the store actor's writes that did
// not land, merged by key so a retry never puts an older value over a newer.
#include <catch2/catch.hpp>

#include "actors/pending_writes.h"
#include "actors/store_actor.h"
#include "registry/registry.h"
#include "storage/blob_store.h"
#include "storage/kv_store.h"

using namespace ep;

namespace {
actors::StoreWrites put(const std::string& key, const std::string& value) {
  actors::StoreWrites w;
  w.puts = {key, value};
  return w;
}
}  // namespace

TEST_CASE("pending writes: a newer write of a key replaces the older one; a delete too") {
  auto kv = make_memory_kv_store();
  auto blobs = make_memory_blob_store();
  Registry registry{*kv, *blobs};
  actors::PendingWrites pending;
  pending.add(put("i/a", "1"));
  pending.add(put("i/b", "1"));
  pending.add(put("i/a", "2"));
  actors::StoreWrites del;
  del.deletes = {"i/b"};
  pending.add(del);
  CHECK(pending.size() == 2);
  REQUIRE(pending.flush(*kv, registry));
  CHECK(pending.empty());
  CHECK(kv->get("i/a").value() == std::optional<std::string>("2"));
  CHECK(kv->get("i/b").value() == std::nullopt);
}

TEST_CASE("pending writes: replicated manifests land before the tags that name them") {
  auto kv = make_memory_kv_store();
  auto blobs = make_memory_blob_store();
  Registry registry{*kv, *blobs};
  const std::string body = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
                           R"("config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":)"
                           R"("sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},)"
                           R"("layers":[]})";
  const std::string digest = Digest::of(body).str();
  actors::StoreWrites tag, manifest;
  tag.tags = {"", "team/app", "v1", digest};
  manifest.manifests = {digest, "application/vnd.oci.image.manifest.v1+json", body};
  actors::PendingWrites pending;
  pending.add(tag);  // the tag first, as a retry may see them
  pending.add(manifest);
  REQUIRE(pending.flush(*kv, registry));
  auto got = registry.get_manifest("team/app", "v1");
  REQUIRE(got);
  CHECK(got->digest.str() == digest);
}

TEST_CASE("pending writes: bounded by manifest bytes; the oldest half goes and is counted") {
  actors::PendingWrites pending;
  const std::string body(1 << 20, 'x');
  for (int i = 0; i < 80; ++i) {
    actors::StoreWrites w;
    w.manifests = {"sha256:" + std::to_string(i), "t", body};
    pending.add(w);
  }
  CHECK(pending.size() < 80);
  CHECK(pending.dropped() > 0);
  CHECK(pending.size() + pending.dropped() == 80);
}
