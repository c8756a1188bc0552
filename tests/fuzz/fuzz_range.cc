// Fuzzes the Range headers: a blob GET's Range (http parse_range, and the
// reply blob_reply builds from it) and a PATCH's Content-Range
// (parse_content_range). Input: 8 bytes of blob size (little-endian), then
// the header value ("bytes=0-1023", "bytes 0-1023/*", "0-1023").
//
// Asserts:
// - a parsed Range lies in the blob: first <= last < size, and is never
//   both parsed and unsatisfiable;
// - blob_reply answers 200 (whole), 206 (Content-Range = the range, length
//   = last - first + 1) or 416 (unsatisfiable, "bytes */<size>");
// - a parsed Content-Range has first <= last and a length that fits in 64
//   bits (the upload compares it with Content-Length).
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "http/api.h"

using namespace ep::http;

namespace {

std::string header_value(const Reply& reply, const std::string& name) {
  for (const auto& [key, value] : reply.headers)
    if (key == name) return value;
  return {};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 8) return 0;
  uint64_t blob_size = 0;
  for (int i = 0; i < 8; ++i) blob_size |= uint64_t{data[i]} << (8 * i);
  const std::string_view header(reinterpret_cast<const char*>(data) + 8, size - 8);

  bool unsatisfiable = true;
  auto range = parse_range(header, blob_size, unsatisfiable);
  if (range) {
    FUZZ_CHECK(!unsatisfiable);
    FUZZ_CHECK(range->first <= range->last && range->last < blob_size);
  }

  const std::string digest = "sha256:" + std::string(64, 'a');
  Reply reply = blob_reply(digest, blob_size, header, FileRange{});
  FUZZ_CHECK(reply.status == 200 || reply.status == 206 || reply.status == 416);
  if (reply.status == 206) {
    FUZZ_CHECK(!header.empty() && range);
    FUZZ_CHECK(header_value(reply, "Content-Range") == "bytes " + std::to_string(range->first) + "-" +
                                                           std::to_string(range->last) + "/" +
                                                           std::to_string(blob_size));
    FUZZ_CHECK(reply.head_length && *reply.head_length == range->last - range->first + 1);
  } else if (reply.status == 416) {
    FUZZ_CHECK(unsatisfiable && header_value(reply, "Content-Range") == "bytes */" + std::to_string(blob_size));
  } else {
    FUZZ_CHECK(!range && reply.head_length && *reply.head_length == blob_size);
  }

  if (auto content_range = parse_content_range(header)) {
    FUZZ_CHECK(content_range->first <= content_range->last);
    FUZZ_CHECK(content_range->last - content_range->first + 1 != 0);  // no wrap to length 0
  }
  return 0;
}
