// TokenSigner (see tokens.h).
#include "access/tokens.h"

#include <sodium.h>

#include <nlohmann/json.hpp>

#include "base/json_text.h"

namespace ep::access {

namespace {

constexpr int kVariant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;

std::string to_base64(const unsigned char* data, size_t size) {
  std::string out(sodium_base64_encoded_len(size, kVariant), '\0');
  sodium_bin2base64(out.data(), out.size(), data, size, kVariant);
  out.resize(out.size() - 1);  // the encoder's NUL
  return out;
}

bool from_base64(std::string_view text, std::string& out) {
  out.assign(text.size(), '\0');
  size_t size = 0;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(), text.size(), nullptr,
                        &size, nullptr, kVariant) != 0)
    return false;
  out.resize(size);
  return true;
}

Status refused(const std::string& why) { return Status{Errc::unauthorized, why}; }

}  // namespace

std::string TokenSigner::issue(const TokenClaims& claims) const {
  nlohmann::json access = nlohmann::json::array();
  for (const auto& [repository, rights] : claims.access)
    access.push_back({{"name", repository}, {"rights", rights}});
  nlohmann::json body = {{"sub", claims.user},      {"iss", claims.issuer}, {"iat", claims.issued_ms},
                         {"exp", claims.expires_ms}, {"access", access},     {"catalog", claims.catalog}};
  std::string payload = json_text(body);
  unsigned char mac[crypto_auth_BYTES];
  crypto_auth(mac, reinterpret_cast<const unsigned char*>(payload.data()), payload.size(), key_.data());
  return to_base64(reinterpret_cast<const unsigned char*>(payload.data()), payload.size()) + "." +
         to_base64(mac, sizeof mac);
}

Result<TokenClaims> TokenSigner::verify(const std::string& token, uint64_t now_ms) const {
  auto dot = token.find('.');
  std::string payload, mac;
  if (dot == std::string::npos || !from_base64(std::string_view(token).substr(0, dot), payload) ||
      !from_base64(std::string_view(token).substr(dot + 1), mac) || mac.size() != crypto_auth_BYTES)
    return refused("malformed token");
  if (crypto_auth_verify(reinterpret_cast<const unsigned char*>(mac.data()),
                         reinterpret_cast<const unsigned char*>(payload.data()), payload.size(), key_.data()) != 0)
    return refused("token signature does not verify (not issued by this site)");
  auto body = nlohmann::json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) return refused("malformed token");
  TokenClaims claims;
  try {
    claims.user = body.at("sub").get<std::string>();
    claims.issuer = body.at("iss").get<std::string>();
    claims.issued_ms = body.at("iat").get<uint64_t>();
    claims.expires_ms = body.at("exp").get<uint64_t>();
    claims.catalog = body.at("catalog").get<bool>();
    for (const auto& entry : body.at("access"))
      claims.access[entry.at("name").get<std::string>()] = entry.at("rights").get<uint8_t>();
  } catch (const nlohmann::json::exception&) {
    return refused("malformed token");
  }
  if (now_ms >= claims.expires_ms) return refused("token expired");
  return claims;
}

}  // namespace ep::access
