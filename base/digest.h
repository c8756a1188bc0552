// Content digests ("sha256:<64 lowercase hex>") and a streaming SHA-256.
//
// Only sha256 is accepted for content addressing: it is what every client
// sends, and one algorithm keeps blob paths and keys unambiguous. A `Digest`
// that exists has been validated; its string form is canonical.
// `Sha256` is not thread-safe; one owner feeds it at a time.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/error.h"

namespace ep {

class Digest {
 public:
  // Parses "sha256:<hex>"; any other algorithm or a malformed hex is an error.
  static Result<Digest> parse(std::string_view text);
  static Digest of(std::string_view content);
  static Digest from_raw_sha256(const unsigned char raw[32]);

  const std::string& str() const { return text_; }           // "sha256:abc..."
  std::string_view hex() const { return std::string_view(text_).substr(7); }
  bool operator==(const Digest& o) const { return text_ == o.text_; }
  bool operator!=(const Digest& o) const { return text_ != o.text_; }
  bool operator<(const Digest& o) const { return text_ < o.text_; }

 private:
  explicit Digest(std::string text) : text_(std::move(text)) {}
  std::string text_;
};

// True when `text` looks like "<algorithm>:<encoded>" per the OCI grammar,
// whether or not we support the algorithm. Used to tell digests from tags.
bool looks_like_digest(std::string_view text);

// `bytes` bytes from the kernel's random source as lowercase hex, or
// nullopt if it failed: an id is never predictable (or all zeros).
std::optional<std::string> random_hex(size_t bytes);

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  void update(const void* data, size_t size);
  Digest finish();  // the object must not be updated afterwards

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ep
