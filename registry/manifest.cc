#include "registry/manifest.h"

#include <nlohmann/json.hpp>
#include "base/json_text.h"

namespace ep {

namespace {

using nlohmann::json;

Status invalid(const std::string& why) { return Status{Errc::manifest_invalid, "manifest invalid: " + why}; }

bool is_known(std::string_view t) {
  return t == media::kOciManifest || t == media::kOciIndex || t == media::kDockerManifest || t == media::kDockerList;
}

// Layers that by definition live elsewhere need not be in the repository.
bool is_foreign_layer(const std::string& media_type) {
  return media_type.find("foreign") != std::string::npos || media_type.find("nondistributable") != std::string::npos;
}

uint64_t descriptor_size(const json& d) {
  auto size = d.find("size");
  return size != d.end() && size->is_number_unsigned() ? size->get<uint64_t>() : 0;
}

Result<Digest> descriptor_digest(const json& d, const std::string& where) {
  if (!d.is_object()) return invalid(where + " is not a descriptor object");
  auto it = d.find("digest");
  if (it == d.end() || !it->is_string()) return invalid(where + " has no digest");
  auto size = d.find("size");
  if (size == d.end() || !size->is_number_integer() || size->get<int64_t>() < 0)
    return invalid(where + " has no valid size");
  auto digest = Digest::parse(it->get<std::string>());
  if (!digest) return invalid(where + ": " + digest.status().message);
  return digest;
}

// RFC 6838 type "/" subtype (parameters are not stored): the media type is
// sent back as a Content-Type header, so nothing else may pass.
bool is_media_type(std::string_view text) {
  auto name_char = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("!#$&-^_.+").find(c) != std::string_view::npos;
  };
  auto slash = text.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 >= text.size() || text.size() > 255) return false;
  for (size_t i = 0; i < text.size(); ++i)
    if (i != slash && !name_char(text[i])) return false;
  return true;
}

std::string string_field(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

Result<ManifestInfo> parse_manifest(std::string_view body, std::string_view content_type) {
  if (body.size() > kMaxManifestBytes) return Status{Errc::too_large, "manifest exceeds 4 MiB"};
  json doc = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return invalid("not valid JSON");
  if (!doc.is_object()) return invalid("not a JSON object");

  ManifestInfo info;
  std::string declared = string_field(doc, "mediaType");
  auto semicolon = content_type.find(';');
  std::string ctype(content_type.substr(0, semicolon));
  while (!ctype.empty() && ctype.back() == ' ') ctype.pop_back();
  if (!declared.empty() && is_known(ctype) && declared != ctype)
    return invalid("mediaType " + declared + " does not match Content-Type " + ctype);
  if (!declared.empty())
    info.media_type = declared;
  else if (!ctype.empty() && ctype != "application/json" && ctype != "application/octet-stream")
    info.media_type = ctype;
  else if (doc.contains("manifests"))
    info.media_type = std::string(media::kOciIndex);
  else
    info.media_type = std::string(media::kOciManifest);

  if (!is_media_type(info.media_type)) return invalid("not a valid media type: " + info.media_type.substr(0, 100));

  const bool index = info.media_type == media::kOciIndex || info.media_type == media::kDockerList;
  const bool image = info.media_type == media::kOciManifest || info.media_type == media::kDockerManifest;
  if (index || image) {
    auto version = doc.find("schemaVersion");
    // Compared as JSON: get<int>() would truncate 4294967298 to 2.
    if (version == doc.end() || !version->is_number_integer() || *version != 2)
      return invalid("schemaVersion must be 2");
  }
  if (image) {
    auto config = doc.find("config");
    if (config == doc.end()) return invalid("image manifest has no config");
    auto cd = descriptor_digest(*config, "config");
    if (!cd) return cd.status();
    info.blobs.push_back(*cd);
    info.blob_sizes.push_back(descriptor_size(*config));
    info.artifact_type = string_field(*config, "mediaType");
    auto layers = doc.find("layers");
    if (layers == doc.end() || !layers->is_array()) return invalid("image manifest has no layers array");
    for (size_t i = 0; i < layers->size(); ++i) {
      const auto& layer = (*layers)[i];
      auto ld = descriptor_digest(layer, "layers[" + std::to_string(i) + "]");
      if (!ld) return ld.status();
      if (is_foreign_layer(string_field(layer, "mediaType"))) continue;
      info.blobs.push_back(*ld);
      info.blob_sizes.push_back(descriptor_size(layer));
    }
  }
  if (index) {
    auto manifests = doc.find("manifests");
    if (manifests == doc.end() || !manifests->is_array()) return invalid("index has no manifests array");
    for (size_t i = 0; i < manifests->size(); ++i) {
      auto md = descriptor_digest((*manifests)[i], "manifests[" + std::to_string(i) + "]");
      if (!md) return md.status();
      info.manifests.push_back(*md);
    }
  }
  if (auto subject = doc.find("subject"); subject != doc.end()) {
    auto sd = descriptor_digest(*subject, "subject");
    if (!sd) return sd.status();
    info.subject = *sd;
  }
  if (auto at = string_field(doc, "artifactType"); !at.empty()) info.artifact_type = at;
  if (auto ann = doc.find("annotations"); ann != doc.end()) {
    if (!ann->is_object()) return invalid("annotations must be an object");
    // The spec's map of strings; nested values would also reach json_text,
    // whose dump recurses once per level (a deep one overflowed the stack).
    for (const auto& value : *ann)
      if (!value.is_string()) return invalid("annotation values must be strings");
    info.annotations_json = json_text(*ann);
  }
  return info;
}

}  // namespace ep
