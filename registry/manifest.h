// Manifest parsing and validation (pure; no storage).
//
// Accepts OCI image manifests and indexes, Docker schema2 manifests and
// manifest lists, and other JSON manifests (e.g. artifacts) as opaque JSON
// objects. Extracts what the registry must check (referenced blobs and
// manifests) and index (subject, artifact type) without keeping the JSON.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/digest.h"
#include "base/error.h"

namespace ep {

namespace media {
constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
constexpr std::string_view kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
constexpr std::string_view kDockerList = "application/vnd.docker.distribution.manifest.list.v2+json";
}  // namespace media

constexpr size_t kMaxManifestBytes = 4 << 20;

struct ManifestInfo {
  std::string media_type;             // effective media type, served as Content-Type
  std::vector<Digest> blobs;          // config and layers that must be in the repository
  std::vector<uint64_t> blob_sizes;   // their descriptors' sizes, in the same order (0 if absent)
  std::vector<Digest> manifests;      // children of an index that must be in the repository
  std::optional<Digest> subject;      // referrers API: the manifest this one refers to
  std::string artifact_type;          // artifactType, else config.mediaType
  std::string annotations_json;       // "" or the annotations object, compact JSON
};

// `content_type` is the request's Content-Type (may be empty or generic).
Result<ManifestInfo> parse_manifest(std::string_view body, std::string_view content_type);

}  // namespace ep
