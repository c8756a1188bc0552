// Htpasswd (see htpasswd.h): parsing and bcrypt checks through libxcrypt.
#include "access/htpasswd.h"

#include "base/json_text.h"

#include <crypt.h>
#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <memory>

namespace ep::access {

namespace {

bool is_bcrypt(std::string_view hash) {
  return hash.size() == 60 && (hash.substr(0, 4) == "$2y$" || hash.substr(0, 4) == "$2b$" || hash.substr(0, 4) == "$2a$");
}

Status bad_line(const std::string& origin, size_t line, const std::string& why) {
  return Status{Errc::config_invalid, origin + " line " + std::to_string(line) + ": " + why};
}

}  // namespace

Result<Htpasswd> Htpasswd::parse(std::string_view text, const std::string& origin) {
  Htpasswd users;
  size_t line_number = 0;
  while (!text.empty()) {
    auto end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0)
      return bad_line(origin, line_number, "expected user:bcrypt-hash");
    std::string user(line.substr(0, colon));
    if (!is_valid_utf8(user) || user.size() > 256 ||
        std::any_of(user.begin(), user.end(), [](unsigned char c) { return c <= ' ' || c == '"' || c == '\\' || c == 0x7f; }))
      return bad_line(origin, line_number, "user names are UTF-8 without spaces, quotes, backslashes or control bytes");
    if (user == "anonymous" || user == "authenticated" || user.front() == '@')
      return bad_line(origin, line_number, "'" + user + "' is a reserved subject of the access file, not a user name");
    std::string_view hash = line.substr(colon + 1);
    if (!is_bcrypt(hash))
      return bad_line(origin, line_number, "the hash of user '" + user +
                                               "' is not bcrypt; write entries with `htpasswd -B`");
    if (!users.hashes_.emplace(user, std::string(hash)).second)
      return bad_line(origin, line_number, "user '" + user + "' appears twice");
  }
  return users;
}

std::string Htpasswd::hash_of(const std::string& user) const {
  auto it = hashes_.find(user);
  return it == hashes_.end() ? std::string() : it->second;
}

bool Htpasswd::verify(const std::string& user, const std::string& password) const {
  auto it = hashes_.find(user);
  return it != hashes_.end() && bcrypt_matches(password, it->second);
}

bool bcrypt_matches(const std::string& password, const std::string& hash) {
  if (!is_bcrypt(hash) || password.find('\0') != std::string::npos) return false;
  auto data = std::make_unique<crypt_data>();  // about 32 KiB: not on the stack
  std::memset(data.get(), 0, sizeof(crypt_data));
  const char* out = crypt_r(password.c_str(), hash.c_str(), data.get());
  if (out == nullptr || std::strlen(out) != hash.size()) return false;
  return sodium_memcmp(out, hash.data(), hash.size()) == 0;
}

}  // namespace ep::access
