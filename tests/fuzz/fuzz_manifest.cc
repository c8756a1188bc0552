// Fuzzes manifest and index parsing (registry/manifest: parse_manifest), the
// body of every manifest PUT and of every manifest a mirror fetches.
// Input: the first byte picks the request's Content-Type (none, generic
// JSON, one of the four known media types, or, for 6, the first line of
// the rest); the rest is the body.
//
// Asserts, for an accepted manifest: an image or index says schemaVersion
// 2 (exactly); the media type is a bare
// "type/subtype" of RFC 6838 characters (it goes back out as a header);
// a known image type lists its config first and has one size per blob; an
// index has no blobs; every digest re-renders to itself; the annotations
// are empty or valid UTF-8 JSON of an object of strings. (libFuzzer's
// default max_len keeps inputs small; the regression input "deeply-nested-
// annotations" is 100 KB, as a manifest PUT may be 4 MiB.)
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>

#include "base/json_text.h"
#include "fuzz_check.h"
#include "registry/manifest.h"

using namespace ep;

namespace {

void check_digest(const Digest& d) {
  auto again = Digest::parse(d.str());
  FUZZ_CHECK(again && *again == d);
}

bool media_type_chars(const std::string& text) {
  for (char c : text)
    if (c <= ' ' || c >= 0x7f || c == ';' || c == ',' || c == '"') return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string_view content_type;
  switch (data[0] % 7) {
    case 0: break;
    case 1: content_type = "application/json"; break;
    case 2: content_type = media::kOciManifest; break;
    case 3: content_type = media::kOciIndex; break;
    case 4: content_type = media::kDockerManifest; break;
    case 5: content_type = media::kDockerList; break;
    default: {
      auto newline = body.find('\n');
      content_type = body.substr(0, newline);
      body = newline == std::string_view::npos ? std::string_view() : body.substr(newline + 1);
    }
  }

  auto info = parse_manifest(body, content_type);
  if (!info) return 0;
  const std::string& type = info->media_type;
  FUZZ_CHECK(!type.empty() && type.size() <= 255 && media_type_chars(type));
  FUZZ_CHECK(type.find('/') != std::string::npos);
  FUZZ_CHECK(info->blobs.size() == info->blob_sizes.size());
  const bool image = type == media::kOciManifest || type == media::kDockerManifest;
  const bool index = type == media::kOciIndex || type == media::kDockerList;
  if (image || index) {
    auto doc = nlohmann::json::parse(body, nullptr, false);
    FUZZ_CHECK(doc.is_object() && doc.value("schemaVersion", nlohmann::json()) == 2);
  }
  if (image) FUZZ_CHECK(!info->blobs.empty());
  if (index) FUZZ_CHECK(info->blobs.empty());
  if (!index) FUZZ_CHECK(info->manifests.empty());
  for (const auto& d : info->blobs) check_digest(d);
  for (const auto& d : info->manifests) check_digest(d);
  if (info->subject) check_digest(*info->subject);
  if (!info->annotations_json.empty()) {
    FUZZ_CHECK(is_valid_utf8(info->annotations_json));
    auto annotations = nlohmann::json::parse(info->annotations_json, nullptr, false);
    FUZZ_CHECK(!annotations.is_discarded() && annotations.is_object());
    for (const auto& value : annotations) FUZZ_CHECK(value.is_string());
  }
  return 0;
}
