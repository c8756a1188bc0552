// Upstream authentication helpers (pure functions, no I/O).
//
// Credentials come from a docker config.json-format file ("auths" by
// registry host). Challenges are parsed from WWW-Authenticate headers.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "base/error.h"

namespace ep {

struct Credentials {
  std::string username, password;
  std::string basic_header() const;  // "Basic base64(user:pass)"
};

// host ("registry.example.com" or "host:port") -> credentials.
using CredentialStore = std::map<std::string, Credentials>;
Result<CredentialStore> load_credentials(const std::string& path);
// The parse behind load_credentials: `text` is the file's content, `origin`
// names it in errors (a seam for tests/fuzz/fuzz_auth.cc).
Result<CredentialStore> parse_credentials(std::string_view text, const std::string& origin);
std::optional<Credentials> find_credentials(const CredentialStore& store, const std::string& host_port);

struct Challenge {
  std::string scheme;  // "bearer" or "basic", lowercase
  std::map<std::string, std::string> params;  // realm, service, scope, ...
};
std::optional<Challenge> parse_challenge(const std::string& header);

std::string base64_encode(const std::string& in);
std::optional<std::string> base64_decode(const std::string& in);

}  // namespace ep
