// Registry tokens: what the token endpoint issues and every node accepts.
//
// A token is base64url(claims JSON) "." base64url(MAC), the MAC being
// HMAC-SHA-512-256 (libsodium crypto_auth) under a key every node of the
// site derives from the site key, so a token one node issued is accepted
// by all of them and by nothing else. Claims: the user ("" when anonymous),
// the issuing node, issue and expiry times, and the granted access, one
// entry per repository with its rights, as the distribution token spec's
// `access` claim. Immutable after construction; any thread may use it.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>

#include "base/error.h"

namespace ep::access {

struct TokenClaims {
  std::string user;  // "" for an anonymous token
  std::string issuer;
  uint64_t issued_ms = 0, expires_ms = 0;
  std::map<std::string, uint8_t> access;  // repository -> rights (access/rules.h)
  bool catalog = false;                   // registry:catalog:* was granted
};

class TokenSigner {
 public:
  using Key = std::array<unsigned char, 32>;
  explicit TokenSigner(const Key& key) : key_(key) {}

  std::string issue(const TokenClaims& claims) const;
  // unauthorized with the reason for a token that is malformed, forged or
  // expired at `now_ms`.
  Result<TokenClaims> verify(const std::string& token, uint64_t now_ms) const;

 private:
  Key key_;
};

}  // namespace ep::access
