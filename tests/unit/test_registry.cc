// Registry and Uploads on the in-memory fakes: the content model end to end.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include "registry/manifest.h"
#include "registry/registry.h"
#include "registry/uploads.h"

using namespace ep;
using nlohmann::json;

namespace {

struct Fixture {
  std::unique_ptr<KvStore> kv = make_memory_kv_store();
  std::unique_ptr<BlobStore> blobs = make_memory_blob_store();
  Registry registry{*kv, *blobs};
  Uploads uploads{*kv, *blobs, registry};

  Digest push_blob(const std::string& repo, const std::string& content) {
    auto state = uploads.start(repo);
    REQUIRE(state.ok());
    auto a = uploads.append(repo, state->id, 0);
    REQUIRE(a.ok());
    REQUIRE((*a)->write(content.data(), content.size()).ok());
    REQUIRE((*a)->commit().ok());
    auto d = uploads.complete(repo, state->id, Digest::of(content).str());
    REQUIRE(d.ok());
    return *d;
  }

  std::string read_blob(const std::string& repo, const Digest& d) {
    auto blob = registry.open_blob(repo, d.str());
    REQUIRE(blob.ok());
    std::string out(blob->size, '\0');
    REQUIRE(::pread(blob->fd.get(), out.data(), out.size(), 0) == static_cast<ssize_t>(out.size()));
    return out;
  }

  std::string image(const std::string& repo, const std::string& layer) {
    auto cfg = push_blob(repo, "config-" + layer);
    auto l = push_blob(repo, layer);
    json m = {{"schemaVersion", 2},
              {"mediaType", media::kOciManifest},
              {"config", {{"mediaType", "application/vnd.oci.image.config.v1+json"}, {"digest", cfg.str()},
                          {"size", 7 + layer.size()}}},
              {"layers", {{{"mediaType", "application/vnd.oci.image.layer.v1.tar"}, {"digest", l.str()},
                           {"size", layer.size()}}}}};
    return m.dump();
  }
};

}  // namespace

TEST_CASE("a pushed manifest is served byte for byte by tag and by digest") {
  Fixture f;
  auto body = f.image("repo", "layer");
  auto put = f.registry.put_manifest("repo", "v1", media::kOciManifest, body);
  REQUIRE(put.ok());
  CHECK(put->digest == Digest::of(body));
  for (auto ref : {std::string("v1"), put->digest.str()}) {
    auto m = f.registry.get_manifest("repo", ref);
    REQUIRE(m.ok());
    CHECK(m->body == body);
    CHECK(m->media_type == media::kOciManifest);
  }
  CHECK(f.registry.get_manifest("other", "v1").status().code == Errc::manifest_unknown);
  CHECK(f.registry.get_manifest("repo", put->digest.str()).ok());
  CHECK(f.registry.get_manifest("other", put->digest.str()).status().code == Errc::manifest_unknown);
}

TEST_CASE("manifests referencing blobs the repository lacks are refused") {
  Fixture f;
  auto body = f.image("repo", "layer");
  auto put = f.registry.put_manifest("elsewhere", "v1", media::kOciManifest, body);
  CHECK(put.status().code == Errc::manifest_blob_unknown);
  CHECK(f.registry.put_manifest("repo", Digest::of("x").str(), media::kOciManifest, body).status().code ==
        Errc::digest_invalid);
  CHECK(f.registry.put_manifest("repo", ".bad", media::kOciManifest, body).status().code == Errc::tag_invalid);
  CHECK(f.registry.put_manifest("Bad", "v1", media::kOciManifest, body).status().code == Errc::name_invalid);
}

TEST_CASE("deleting by digest removes the manifest and its tags; by tag only the tag") {
  Fixture f;
  auto body = f.image("repo", "layer");
  auto digest = f.registry.put_manifest("repo", "a", media::kOciManifest, body)->digest;
  REQUIRE(f.registry.put_manifest("repo", "b", media::kOciManifest, body).ok());
  REQUIRE(f.registry.delete_manifest("repo", "a").ok());
  CHECK(f.registry.get_manifest("repo", "a").status().code == Errc::manifest_unknown);
  CHECK(f.registry.get_manifest("repo", digest.str()).ok());
  REQUIRE(f.registry.delete_manifest("repo", digest.str()).ok());
  CHECK(f.registry.get_manifest("repo", "b").status().code == Errc::manifest_unknown);
  CHECK(f.registry.list_tags("repo", -1, "")->items.empty());
  CHECK(f.registry.delete_manifest("repo", digest.str()).code == Errc::manifest_unknown);
}

TEST_CASE("tags and catalog paginate in lexical order") {
  Fixture f;
  auto body = f.image("r", "layer");
  for (auto tag : {"c", "a", "b", "d"}) REQUIRE(f.registry.put_manifest("r", tag, "", body).ok());
  auto all = f.registry.list_tags("r", -1, "");
  CHECK(all->items == std::vector<std::string>{"a", "b", "c", "d"});
  auto first = f.registry.list_tags("r", 2, "");
  CHECK(first->items == std::vector<std::string>{"a", "b"});
  CHECK(first->more);
  auto second = f.registry.list_tags("r", 2, "b");
  CHECK(second->items == std::vector<std::string>{"c", "d"});
  CHECK_FALSE(second->more);
  CHECK(f.registry.list_tags("r", 0, "")->items.empty());
  CHECK(f.registry.list_tags("nope", -1, "").status().code == Errc::name_unknown);
  f.image("r/sub", "x");
  CHECK(f.registry.catalog(-1, "")->items == std::vector<std::string>{"r", "r/sub"});
  CHECK(f.registry.catalog(1, "r")->items == std::vector<std::string>{"r/sub"});
}

TEST_CASE("content is deduplicated; deleting one repository's link keeps another's") {
  Fixture f;
  auto d1 = f.push_blob("one", "shared");
  auto d2 = f.push_blob("two", "shared");
  CHECK(d1 == d2);
  REQUIRE(f.registry.delete_blob("one", d1.str()).ok());
  CHECK(f.registry.stat_blob("one", d1.str()).status().code == Errc::blob_unknown);
  CHECK(f.read_blob("two", d1) == "shared");
}

TEST_CASE("cross-repository mount needs the blob in the source repository") {
  Fixture f;
  auto d = f.push_blob("src", "data");
  CHECK(f.registry.mount_blob("dst", d.str(), "other").code == Errc::blob_unknown);
  REQUIRE(f.registry.mount_blob("dst", d.str(), "src").ok());
  CHECK(f.read_blob("dst", d) == "data");
}

TEST_CASE("referrers list manifests whose subject is the digest, filterable") {
  Fixture f;
  auto subject_body = f.image("r", "layer");
  auto subject = f.registry.put_manifest("r", "v1", media::kOciManifest, subject_body)->digest;
  auto cfg = f.push_blob("r", "{}");
  json sig = {{"schemaVersion", 2},
              {"mediaType", media::kOciManifest},
              {"artifactType", "application/x.sig"},
              {"config", {{"mediaType", "application/vnd.oci.empty.v1+json"}, {"digest", cfg.str()}, {"size", 2}}},
              {"layers", json::array()},
              {"subject", {{"mediaType", media::kOciManifest}, {"digest", subject.str()}, {"size", subject_body.size()}}},
              {"annotations", {{"who", "me"}}}};
  auto put = f.registry.put_manifest("r", Digest::of(sig.dump()).str(), media::kOciManifest, sig.dump());
  REQUIRE(put.ok());
  REQUIRE(put->subject);
  auto index = json::parse(*f.registry.referrers("r", subject.str(), ""));
  REQUIRE(index["manifests"].size() == 1);
  CHECK(index["manifests"][0]["artifactType"] == "application/x.sig");
  CHECK(index["manifests"][0]["annotations"]["who"] == "me");
  CHECK(index["manifests"][0]["size"] == sig.dump().size());
  CHECK(json::parse(*f.registry.referrers("r", subject.str(), "other/type"))["manifests"].empty());
  REQUIRE(f.registry.delete_manifest("r", put->digest.str()).ok());
  CHECK(json::parse(*f.registry.referrers("r", subject.str(), ""))["manifests"].empty());
}
