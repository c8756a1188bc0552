// Fuzzes the peer data stream's decoder (transfer/secure_channel): the
// handshake as either side sees a peer's bytes, and the frame decoder
// (SecureChannel::receive: clear length, header length, header, payload
// slices, GCM tag). Everything runs over a socketpair; libsodium's
// randomness is fixed (fuzz_fixtures.h) so every run's keys are the same.
// Input: the first byte picks the mode:
//   0 / 1: the rest is what a peer sends during the handshake, read by a
//     server (0) or a client (1), then end of stream;
//   2: a real handshake, then a script of ops, each starting with a byte:
//     op%4 == 0 genuine frame: u16 header length, u16 payload length
//       (both little-endian, at most 16 KiB), the header bytes (the
//       payload is a pattern): sent by the peer's SecureChannel, received;
//     op%4 == 1 tampered frame: as 0, then u16 position and a byte to XOR
//       into the sealed frame at position % its length; ends the script;
//     op%4 == 2 raw bytes: the rest of the input (at most 64 KiB), written
//       as is; ends it;
//     op%4 == 3 ends the script.
//   After the script the peer closes its side.
//
// Asserts: a genuine frame is received whole and equal; a tampered frame
// never is (receive fails); once the peer closed, receive ends with an
// error rather than blocking or inventing a frame.
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>

#include "fuzz_check.h"
#include "fuzz_fixtures.h"

using namespace ep;
using namespace ep::transfer;

namespace {

constexpr std::chrono::milliseconds kTimeout{2000};
constexpr size_t kMaxPart = 16 << 10;
// Raw bytes are written before anything reads them: keep within the socket buffer.
constexpr size_t kMaxRaw = 64 << 10;

struct Input {
  const uint8_t* p;
  size_t n;
  bool take(void* out, size_t k) {
    if (n < k) return false;
    std::memcpy(out, p, k);
    p += k;
    n -= k;
    return true;
  }
  bool u16(size_t& out) {
    uint8_t b[2];
    if (!take(b, 2)) return false;
    out = b[0] | (b[1] << 8);
    return true;
  }
};

void write_raw(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    auto n = ::send(fd, p, size, MSG_NOSIGNAL);
    if (n <= 0) return;  // the other side is gone: the decoder already failed
    p += n;
    size -= static_cast<size_t>(n);
  }
}

// Everything queued on `fd` now (what the peer's send just wrote).
std::string drain(int fd) {
  std::string out;
  char buffer[4096];
  for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT)) > 0;) out.append(buffer, static_cast<size_t>(n));
  return out;
}

std::pair<UniqueFd, UniqueFd> socket_pair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) __builtin_trap();
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

void fuzz_handshake(bool server, Input in) {
  auto [ours, peer] = socket_pair();
  write_raw(peer.get(), in.p, in.n);
  ::shutdown(peer.get(), SHUT_WR);
  fuzz::FixedRandom::reset(fuzz::kServerSeed);
  auto channel = server ? SecureChannel::server(std::move(ours), fuzz::data_key(), kTimeout)
                        : SecureChannel::client(std::move(ours), fuzz::data_key(), kTimeout);
  (void)channel;  // a raw peer may even get through, with a recorded transcript
}

std::string pattern(size_t size, size_t salt) {
  std::string out(size, '\0');
  for (size_t i = 0; i < size; ++i) out[i] = static_cast<char>((i * 131 + salt) & 0xff);
  return out;
}

Status send_frame(SecureChannel& peer, const std::string& header, const std::string& payload) {
  return peer.send(header, payload.size(), [&](uint64_t offset, unsigned char* into, size_t n) {
    std::memcpy(into, payload.data() + offset, n);
    return Status::Ok();
  });
}

void fuzz_frames(Input in) {
  auto [a, b] = socket_pair();
  Result<SecureChannel> client(Status{Errc::io_error, "not run"});
  std::thread peer_side([&, fd = std::move(a)]() mutable {
    fuzz::FixedRandom::reset(fuzz::kClientSeed);
    client = SecureChannel::client(std::move(fd), fuzz::data_key(), kTimeout);
  });
  fuzz::FixedRandom::reset(fuzz::kServerSeed);
  auto server = SecureChannel::server(std::move(b), fuzz::data_key(), kTimeout);
  peer_side.join();
  FUZZ_CHECK(server && client);

  for (size_t frame = 0;; ++frame) {
    uint8_t op = 3;
    in.take(&op, 1);
    if (op % 4 == 3) break;
    if (op % 4 == 2) {
      in.n = std::min(in.n, kMaxRaw);
      write_raw(client->socket(), in.p, in.n);
      break;
    }
    size_t header_size = 0, payload_size = 0;
    if (!in.u16(header_size) || !in.u16(payload_size)) break;
    header_size = std::min({header_size % (kMaxPart + 1), in.n});
    const std::string header(reinterpret_cast<const char*>(in.p), header_size);
    in.p += header_size;
    in.n -= header_size;
    const std::string payload = pattern(payload_size % (kMaxPart + 1), frame);
    FUZZ_CHECK(send_frame(*client, header, payload).ok());
    if (op % 4 == 1) {
      size_t position = 0;
      uint8_t flip = 0;
      if (!in.u16(position) || !in.take(&flip, 1)) flip = 1;
      std::string sealed = drain(server->socket());
      FUZZ_CHECK(!sealed.empty());
      sealed[position % sealed.size()] ^= flip ? flip : 1;
      write_raw(client->socket(), sealed.data(), sealed.size());
      ::shutdown(client->socket(), SHUT_WR);
      FUZZ_CHECK(!server->receive());
      return;
    }
    auto got = server->receive();
    FUZZ_CHECK(got && got->header == header && got->payload == payload);
  }
  ::shutdown(client->socket(), SHUT_WR);
  for (int frames = 0;; ++frames) {
    FUZZ_CHECK(frames <= static_cast<int>(in.n));  // each frame costs bytes; no frame from nothing
    if (!server->receive()) break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::FixedRandom::install();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  Input in{data + 1, size - 1};
  switch (data[0] % 3) {
    case 0: fuzz_handshake(true, in); break;
    case 1: fuzz_handshake(false, in); break;
    default: fuzz_frames(in);
  }
  return 0;
}
