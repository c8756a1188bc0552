#include "base/digest.h"

#include <openssl/evp.h>
#include <sys/random.h>

#include <cerrno>


namespace ep {

namespace {
bool is_lower_hex(std::string_view s) {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

// Appends `size` bytes to `out` as lowercase hex.
void append_hex(std::string& out, const unsigned char* data, size_t size) {
  static const char* kHex = "0123456789abcdef";
  for (size_t i = 0; i < size; ++i) {
    out.push_back(kHex[data[i] >> 4]);
    out.push_back(kHex[data[i] & 0xf]);
  }
}
}  // namespace

Result<Digest> Digest::parse(std::string_view text) {
  if (!looks_like_digest(text))
    return Status{Errc::digest_invalid, "malformed digest: " + std::string(text.substr(0, 100))};
  if (text.substr(0, 7) != "sha256:")
    return Status{Errc::digest_invalid,
                  "unsupported digest algorithm (only sha256): " + std::string(text.substr(0, 100))};
  auto hex = text.substr(7);
  if (hex.size() != 64 || !is_lower_hex(hex))
    return Status{Errc::digest_invalid,
                  "sha256 digest must be 64 lowercase hex characters: " + std::string(text.substr(0, 100))};
  return Digest(std::string(text));
}

Digest Digest::from_raw_sha256(const unsigned char raw[32]) {
  std::string out = "sha256:";
  out.reserve(7 + 64);
  append_hex(out, raw, 32);
  return Digest(std::move(out));
}

Digest Digest::of(std::string_view content) {
  Sha256 h;
  h.update(content.data(), content.size());
  return h.finish();
}

std::optional<std::string> random_hex(size_t bytes) {
  std::string raw(bytes, '\0');
  for (size_t got = 0; got < bytes;) {
    auto n = ::getrandom(raw.data() + got, bytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    got += static_cast<size_t>(n);
  }
  std::string out;
  append_hex(out, reinterpret_cast<const unsigned char*>(raw.data()), raw.size());
  return out;
}

namespace {
bool lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// [a-z0-9]+ ([+._-] [a-z0-9]+)*
bool valid_algorithm(std::string_view alg) {
  bool after_separator = true;  // the first character may not be one
  for (char c : alg) {
    if (lower_alnum(c)) {
      after_separator = false;
    } else if (c == '+' || c == '.' || c == '_' || c == '-') {
      if (after_separator) return false;
      after_separator = true;
    } else {
      return false;
    }
  }
  return !after_separator;
}

// [a-zA-Z0-9=_-]+
bool valid_encoded(std::string_view enc) {
  if (enc.empty()) return false;
  for (char c : enc)
    if (!(lower_alnum(c) || (c >= 'A' && c <= 'Z') || c == '=' || c == '_' || c == '-')) return false;
  return true;
}
}  // namespace

bool looks_like_digest(std::string_view text) {
  // digest := algorithm ":" encoded (checked by hand: std::regex was a hot
  // spot, called for every tag and manifest the site replicates)
  auto colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 >= text.size()) return false;
  if (text.size() > 256) return false;
  return valid_algorithm(text.substr(0, colon)) && valid_encoded(text.substr(colon + 1));
}

struct Sha256::Impl {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~Impl() { EVP_MD_CTX_free(ctx); }
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr);
}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(const void* data, size_t size) { EVP_DigestUpdate(impl_->ctx, data, size); }

Digest Sha256::finish() {
  unsigned char raw[32];
  unsigned int len = 0;
  EVP_DigestFinal_ex(impl_->ctx, raw, &len);
  return Digest::from_raw_sha256(raw);
}

}  // namespace ep
