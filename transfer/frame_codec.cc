#include "transfer/frame_codec.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <sodium.h>

#include <algorithm>
#include <cstring>

namespace ep::transfer {

namespace {
// Framing version, bound into the handshake: v2 = tag last, sliced frames.
constexpr char kStreamVersion[] = "edgepier-data/2";
constexpr size_t kTranscriptBytes = sizeof kStreamVersion - 1 + 2 * kPublicKeyBytes + 1;
}  // namespace

Handshake::Handshake(bool is_client) : is_client_(is_client) {
  if (sodium_init() < 0) return;  // crypto_kx below then fails the proof check
  crypto_kx_keypair(public_.data(), secret_.data());
}

Handshake::~Handshake() { sodium_memzero(secret_.data(), secret_.size()); }

// The stream version, client key, server key, role: with the version in it,
// nodes whose framing differs fail here, not on a frame.
void Handshake::transcript(const unsigned char* peer_public, char role, unsigned char* out) const {
  unsigned char* keys = out + sizeof kStreamVersion - 1;
  std::memcpy(out, kStreamVersion, sizeof kStreamVersion - 1);
  std::memcpy(keys, is_client_ ? public_.data() : peer_public, kPublicKeyBytes);
  std::memcpy(keys + kPublicKeyBytes, is_client_ ? peer_public : public_.data(), kPublicKeyBytes);
  out[kTranscriptBytes - 1] = static_cast<unsigned char>(role);
}

std::array<unsigned char, kProofBytes> Handshake::proof(const unsigned char* peer_public, const DataKey& key) const {
  unsigned char text[kTranscriptBytes];
  transcript(peer_public, is_client_ ? 'c' : 's', text);
  std::array<unsigned char, kProofBytes> mac{};
  crypto_auth(mac.data(), text, sizeof text, key.data());
  return mac;
}

Status Handshake::finish(const unsigned char* peer_public, const unsigned char* peer_proof, const DataKey& key,
                         SessionKey& rx, SessionKey& tx) {
  unsigned char text[kTranscriptBytes];
  transcript(peer_public, is_client_ ? 's' : 'c', text);
  if (crypto_auth_verify(peer_proof, text, sizeof text, key.data()) != 0)
    return Status{Errc::unauthorized, "peer does not hold the site key (or runs another data-stream version than " +
                                          std::string(kStreamVersion) + ")"};
  int rc = is_client_ ? crypto_kx_client_session_keys(rx.data(), tx.data(), public_.data(), secret_.data(), peer_public)
                      : crypto_kx_server_session_keys(rx.data(), tx.data(), public_.data(), secret_.data(), peer_public);
  sodium_memzero(secret_.data(), secret_.size());
  if (rc != 0) return Status{Errc::unauthorized, "bad peer key"};
  return Status::Ok();
}

// AES-256-GCM through OpenSSL: AES-NI, several GB/s per core, where
// libsodium's secretbox manages under 1 GB/s. A key never sees a nonce
// twice, and frames cannot be replayed or reordered.
FrameCipher::FrameCipher(bool seal, const SessionKey& key, uint64_t counter)
    : seal_(seal), ctx_(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free) {
  unsigned char nonce[12] = {};
  for (int i = 0; i < 8; ++i) nonce[i] = static_cast<unsigned char>(counter >> (8 * i));
  ok_ = ctx_ && EVP_CipherInit_ex(ctx_.get(), EVP_aes_256_gcm(), nullptr, key.data(), nonce, seal ? 1 : 0) == 1;
}

bool FrameCipher::update(unsigned char* data, size_t size) {
  int out = 0;  // pieces are at most a header and a slice: well within int
  ok_ = ok_ && size <= kMaxFrame && EVP_CipherUpdate(ctx_.get(), data, &out, data, static_cast<int>(size)) == 1;
  return ok_;
}

bool FrameCipher::tag_into(unsigned char tag[kTagBytes]) {
  int out = 0;
  return ok_ && seal_ && EVP_CipherFinal_ex(ctx_.get(), tag, &out) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx_.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes, tag) == 1;
}

bool FrameCipher::tag_matches(unsigned char tag[kTagBytes]) {
  int out = 0;
  unsigned char none[16];
  return ok_ && !seal_ && EVP_CIPHER_CTX_ctrl(ctx_.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, tag) == 1 &&
         EVP_CipherFinal_ex(ctx_.get(), none, &out) == 1;
}

FrameWriter::FrameWriter(const SessionKey& tx, uint64_t counter, std::string_view header, uint64_t payload_size)
    : cipher_(true, tx, counter), payload_size_(payload_size), lead_(8 + header.size()) {
  buffer_.reset(new unsigned char[lead_ + std::min<uint64_t>(payload_size, kSlice) + kTagBytes]);
  const uint32_t sealed_len = htonl(static_cast<uint32_t>(4 + header.size() + payload_size + kTagBytes));
  const uint32_t header_len = htonl(static_cast<uint32_t>(header.size()));
  std::memcpy(buffer_.get(), &sealed_len, 4);
  std::memcpy(buffer_.get() + 4, &header_len, 4);
  std::memcpy(buffer_.get() + 8, header.data(), header.size());
}

Result<std::pair<const unsigned char*, size_t>> FrameWriter::next(const PayloadFill& fill) {
  if (done_) return Status{Errc::io_error, "frame already written"};
  if (4 + (lead_ - 8) + payload_size_ > kMaxFrame) return Status{Errc::too_large, "frame too large"};
  // The length goes in the clear; everything after it is sealed.
  size_t sealed_from = first_ ? 4 : 0, used = first_ ? lead_ : 0;
  first_ = false;
  const size_t n = static_cast<size_t>(std::min<uint64_t>(payload_size_ - produced_, kSlice));
  if (n > 0)
    if (auto s = fill(produced_, buffer_.get() + used, n); !s) return s;
  if (!cipher_.update(buffer_.get() + sealed_from, used + n - sealed_from))
    return Status{Errc::io_error, "cannot seal a frame"};
  used += n;
  produced_ += n;
  if (produced_ == payload_size_) {
    if (!cipher_.tag_into(buffer_.get() + used)) return Status{Errc::io_error, "cannot seal a frame"};
    used += kTagBytes;
    done_ = true;
  }
  return std::make_pair(static_cast<const unsigned char*>(buffer_.get()), used);
}

Result<std::string> open_whole_frame(const SessionKey& rx, uint64_t counter, unsigned char* sealed, size_t size) {
  if (size < kTagBytes + 4) return Status{Errc::io_error, "bad frame length from peer"};
  FrameCipher cipher(false, rx, counter);
  const size_t plain = size - kTagBytes;
  if (!cipher.update(sealed, plain) || !cipher.tag_matches(sealed + plain))
    return Status{Errc::io_error, "peer frame failed authentication"};
  uint32_t header_len = 0;
  std::memcpy(&header_len, sealed, 4);
  header_len = ntohl(header_len);
  if (header_len > plain - 4) return Status{Errc::io_error, "bad frame header from peer"};
  return std::string(reinterpret_cast<const char*>(sealed) + 4, header_len);
}

}  // namespace ep::transfer
