// JSON text for anything the node sends or stores: OCI error bodies, admin
// views, registry records, epctl output.
//
// Pure functions, no state. Invariant: the result is always valid UTF-8 JSON.
// Text taken from a request (a name, a reference, a header) may hold any
// bytes; nlohmann's default dump throws on invalid UTF-8, and one uncaught
// throw used to take the node down. Bytes that are not UTF-8 become U+FFFD.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>

namespace ep {

// doc.dump(indent) with invalid UTF-8 replaced instead of throwing.
std::string json_text(const nlohmann::json& doc, int indent = -1);
std::string json_text(const nlohmann::ordered_json& doc, int indent = -1);

// True when `text` is well-formed UTF-8 (no overlong forms, no surrogates,
// nothing above U+10FFFF).
bool is_valid_utf8(std::string_view text);

// `text` made printable for a log line or a message: control bytes, bytes
// that are not UTF-8 and backslashes become \xNN escapes, at most `limit`
// bytes of input are kept.
std::string printable(std::string_view text, size_t limit = 256);

}  // namespace ep
