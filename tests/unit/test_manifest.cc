// Manifest parsing: media types, references that must exist, subject.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "registry/manifest.h"

using namespace ep;
using nlohmann::json;

namespace {
json descriptor(const std::string& content, const std::string& media_type) {
  return {{"mediaType", media_type}, {"digest", Digest::of(content).str()}, {"size", content.size()}};
}
}  // namespace

TEST_CASE("OCI image manifest: config and layers are required blobs") {
  json m = {{"schemaVersion", 2},
            {"mediaType", media::kOciManifest},
            {"config", descriptor("cfg", "application/vnd.oci.image.config.v1+json")},
            {"layers", {descriptor("l1", "application/vnd.oci.image.layer.v1.tar+gzip")}}};
  auto info = parse_manifest(m.dump(), media::kOciManifest);
  REQUIRE(info.ok());
  CHECK(info->media_type == media::kOciManifest);
  REQUIRE(info->blobs.size() == 2);
  CHECK(info->blobs[0] == Digest::of("cfg"));
  CHECK(info->artifact_type == "application/vnd.oci.image.config.v1+json");
  CHECK_FALSE(info->subject);
}

TEST_CASE("index children are required manifests; subject and artifactType are extracted") {
  json m = {{"schemaVersion", 2},
            {"mediaType", media::kOciIndex},
            {"artifactType", "application/x.sig"},
            {"manifests", {descriptor("child", std::string(media::kOciManifest))}},
            {"subject", descriptor("subj", std::string(media::kOciManifest))},
            {"annotations", {{"k", "v"}}}};
  auto info = parse_manifest(m.dump(), "");
  REQUIRE(info.ok());
  CHECK(info->media_type == media::kOciIndex);
  CHECK(info->manifests == std::vector<Digest>{Digest::of("child")});
  REQUIRE(info->subject);
  CHECK(*info->subject == Digest::of("subj"));
  CHECK(info->artifact_type == "application/x.sig");
  CHECK(info->annotations_json == R"({"k":"v"})");
}

TEST_CASE("invalid manifests are MANIFEST_INVALID") {
  CHECK(parse_manifest("{not json", "").status().code == Errc::manifest_invalid);
  CHECK(parse_manifest("[1,2]", "").status().code == Errc::manifest_invalid);
  json no_layers = {{"schemaVersion", 2}, {"config", descriptor("c", "x")}};
  CHECK(parse_manifest(no_layers.dump(), media::kOciManifest).status().code == Errc::manifest_invalid);
  json bad_digest = {{"schemaVersion", 2},
                     {"config", {{"mediaType", "x"}, {"digest", "sha256:zz"}, {"size", 1}}},
                     {"layers", json::array()}};
  CHECK(parse_manifest(bad_digest.dump(), media::kOciManifest).status().code == Errc::manifest_invalid);
  json mismatch = {{"schemaVersion", 2}, {"mediaType", media::kOciIndex}, {"manifests", json::array()}};
  CHECK(parse_manifest(mismatch.dump(), media::kOciManifest).status().code == Errc::manifest_invalid);
  json v1 = {{"schemaVersion", 1}, {"config", descriptor("c", "x")}, {"layers", json::array()}};
  CHECK(parse_manifest(v1.dump(), media::kDockerManifest).status().code == Errc::manifest_invalid);
}

TEST_CASE("manifests over 4 MiB are refused") {
  std::string big(kMaxManifestBytes + 1, ' ');
  CHECK(parse_manifest(big, media::kOciManifest).status().code == Errc::too_large);
}

TEST_CASE("foreign layers need not be stored") {
  json m = {{"schemaVersion", 2},
            {"mediaType", media::kDockerManifest},
            {"config", descriptor("c", "application/vnd.docker.container.image.v1+json")},
            {"layers", {descriptor("w", "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")}}};
  auto info = parse_manifest(m.dump(), media::kDockerManifest);
  REQUIRE(info.ok());
  CHECK(info->blobs.size() == 1);
}
