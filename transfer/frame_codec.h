// The data stream's cryptography without I/O: the handshake's arithmetic,
// the frame cipher, and frames as pieces to write. Shared by the blocking
// SecureChannel (secure_channel.h, which documents the protocol) and the
// asynchronous ChunkServer (chunk_server.h), so both speak exactly one
// framing. Plain values; one owner each, no locking.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "base/error.h"

typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;

namespace ep::transfer {

using DataKey = std::array<unsigned char, 32>;
using SessionKey = std::array<unsigned char, 32>;
constexpr size_t kMaxFrame = 80 << 20;
constexpr size_t kSlice = 256 << 10;
constexpr size_t kTagBytes = 16;
constexpr size_t kPublicKeyBytes = 32;  // crypto_kx
constexpr size_t kProofBytes = 32;      // crypto_auth

// Produces the payload bytes [offset, offset + size) into `into` (e.g. a
// pread); called in order, a slice at a time.
using PayloadFill = std::function<Status(uint64_t offset, unsigned char* into, size_t size)>;

// One side of the handshake: each side sends its ephemeral public key, then
// its proof (a MAC under the site's data key over the transcript), and
// checks the other's.
class Handshake {
 public:
  explicit Handshake(bool is_client);
  ~Handshake();
  Handshake(const Handshake&) = delete;
  Handshake& operator=(const Handshake&) = delete;
  const unsigned char* public_key() const { return public_.data(); }
  std::array<unsigned char, kProofBytes> proof(const unsigned char* peer_public, const DataKey& key) const;
  // Checks the peer's proof; on success, this side's session keys.
  Status finish(const unsigned char* peer_public, const unsigned char* peer_proof, const DataKey& key,
                SessionKey& rx, SessionKey& tx);

 private:
  void transcript(const unsigned char* peer_public, char role, unsigned char* out) const;
  bool is_client_;
  std::array<unsigned char, kPublicKeyBytes> public_{};
  std::array<unsigned char, 32> secret_{};
};

// One frame's AES-256-GCM state, sealing or opening in place, a piece at a
// time, under a session key with the frame counter as nonce.
class FrameCipher {
 public:
  FrameCipher(bool seal, const SessionKey& key, uint64_t counter);
  bool update(unsigned char* data, size_t size);
  bool tag_into(unsigned char tag[kTagBytes]);     // sealing: the tag after the last piece
  bool tag_matches(unsigned char tag[kTagBytes]);  // opening: whether the frame is authentic

 private:
  bool seal_, ok_ = false;
  std::unique_ptr<EVP_CIPHER_CTX, void (*)(EVP_CIPHER_CTX*)> ctx_;
};

// An outgoing frame as pieces to write in order: [sealed length | header
// length | header | payload... | tag]. The first piece carries everything up
// to the first payload slice, the last one the tag; each is sealed in place
// in one slice-sized buffer, valid until the next call.
class FrameWriter {
 public:
  FrameWriter(const SessionKey& tx, uint64_t counter, std::string_view header, uint64_t payload_size);
  // The next piece; `fill` provides its payload bytes.
  Result<std::pair<const unsigned char*, size_t>> next(const PayloadFill& fill);
  bool done() const { return done_; }

 private:
  FrameCipher cipher_;
  uint64_t payload_size_, produced_ = 0;
  std::unique_ptr<unsigned char[]> buffer_;
  size_t lead_;  // bytes before the first payload byte in the first piece
  bool first_ = true, done_ = false;
};

// Opens a frame received whole (`sealed`: what follows its length prefix,
// decrypted in place) and returns its header; its payload is ignored.
Result<std::string> open_whole_frame(const SessionKey& rx, uint64_t counter, unsigned char* sealed, size_t size);

}  // namespace ep::transfer
