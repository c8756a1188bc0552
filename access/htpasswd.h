// Htpasswd: the registry's users, parsed from an htpasswd file (bcrypt only).
//
// One "user:hash" per line, as `htpasswd -B` (apache2-utils) writes them;
// blank lines and lines starting with '#' are ignored. Only bcrypt hashes
// ($2y$, $2b$, $2a$) are accepted: MD5 ($apr1$), SHA1 ({SHA}) and crypt(3)
// DES are too weak to guard pushes, and a file holding one is refused with
// the line that has it. Immutable after parse, so any thread may read it.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "base/error.h"

namespace ep::access {

class Htpasswd {
 public:
  // config_invalid naming `origin` and the line for anything malformed.
  static Result<Htpasswd> parse(std::string_view text, const std::string& origin);

  size_t size() const { return hashes_.size(); }
  // The stored bcrypt hash of `user` ("" when unknown).
  std::string hash_of(const std::string& user) const;
  // Checks `password` against `user`'s bcrypt hash. Costs what the hash's
  // cost factor says (milliseconds to a second): call off I/O threads.
  bool verify(const std::string& user, const std::string& password) const;

 private:
  std::map<std::string, std::string> hashes_;
};

// Checks `password` against one bcrypt `hash` (crypt(3) of libxcrypt).
bool bcrypt_matches(const std::string& password, const std::string& hash);

}  // namespace ep::access
