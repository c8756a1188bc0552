// SecureChannel: an authenticated, encrypted, framed byte stream over a
// connected TCP socket (blocking; used by chunk transfer threads). The
// cryptography itself is in frame_codec.h, shared with the asynchronous
// ChunkServer.
//
// Handshake: both sides exchange ephemeral X25519 keys (crypto_kx) and prove
// the site's data key with a MAC over the transcript, so a peer without the
// key learns nothing and gets nothing; a man in the middle cannot splice in.
// Frames: 4-byte length + AES-256-GCM ciphertext + 16-byte tag, under
// per-direction session keys with a counter nonce, so frames cannot be
// replayed, reordered or altered. The plaintext is a 4-byte header length, a
// header (a serialized message) and a raw payload (chunk bytes). Payloads are
// sealed and opened in slices of kSlice bytes as they are produced or
// arrive, so a sender or a streaming receiver never holds a chunk whole in
// memory, and each slice is still in the CPU cache when it is encrypted,
// hashed and written. Both ends must run this framing (no negotiation).
// Socket timeouts bound every read and write. One owner at a time.
#pragma once

#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <string_view>
#include <utility>
#include <chrono>
#include <cstdint>
#include <string>

#include <sys/socket.h>

#include "base/error.h"
#include "base/fd.h"
#include "transfer/frame_codec.h"

namespace ep::transfer {

// A frame received whole (requests, notes, tests).
struct Frame {
  std::string header, payload;
};

// Takes a frame as it arrives: `begin` sees the header before any payload
// byte, `bytes` the payload in order. Header and payload are decrypted but
// not yet authenticated: the tag is checked after the last byte, and
// receive() fails if it does not match, so nothing may be acted on for good
// before it returns OK. A failing callback fails receive() (the stream is
// then out of step: drop the channel).
struct FrameSink {
  std::function<Status(std::string_view header, uint64_t payload_size)> begin;
  std::function<Status(const unsigned char* data, size_t size)> bytes;
};

class SecureChannel {
 public:
  static Result<SecureChannel> client(UniqueFd fd, const DataKey& key, std::chrono::milliseconds timeout);
  // The socket, for shutdown(2) from another thread (which ends a blocked
  // read or write at once); the channel still owns it.
  int socket() const { return fd_.get(); }
  static Result<SecureChannel> server(UniqueFd fd, const DataKey& key, std::chrono::milliseconds timeout);

  // The connection's socket and session, for a caller that drives the same
  // stream asynchronously for a while (chunk probes) and hands it back with
  // adopt(), which puts the socket back in blocking mode.
  struct State {
    UniqueFd fd;
    SessionKey rx{}, tx{};
    uint64_t rx_counter = 0, tx_counter = 0;
  };
  State release() &&;
  static SecureChannel adopt(State state);

  Status send(std::string_view header, size_t payload_size = 0, const PayloadFill& fill = {});
  void set_timeout(std::chrono::milliseconds timeout);
  Result<Frame> receive();
  Status receive(const FrameSink& sink);

 private:
  SecureChannel() = default;
  static Result<SecureChannel> handshake(UniqueFd fd, const DataKey& key, bool is_client,
                                         std::chrono::milliseconds timeout);
  UniqueFd fd_;
  SessionKey rx_{}, tx_{};
  uint64_t rx_counter_ = 0, tx_counter_ = 0;
  std::unique_ptr<unsigned char[]> slice_;  // receive buffer, kSlice bytes, allocated on first use
};

// The first address "host:port" names (a numeric host is parsed without a lookup).
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t size = 0;
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};
Result<SocketAddress> resolve_tcp(const std::string& address);

// Connects to "host:port" with a deadline.
Result<UniqueFd> connect_tcp(const std::string& address, std::chrono::milliseconds timeout);

// Binds and listens on an IPv4 "host:port" (`what` names the setting in
// errors); returns the socket and the bound port.
Result<std::pair<UniqueFd, uint16_t>> listen_tcp(const std::string& address, const std::string& what);

}  // namespace ep::transfer
