#include "transfer/secure_channel.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

namespace ep::transfer {

namespace {

Status io_failure(const char* what) { return Status{Errc::io_error, std::string(what) + ": " + std::strerror(errno)}; }

Status write_all(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    auto n = ::send(fd, p, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return io_failure("peer stream write");
    p += n;
    size -= static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status read_all(int fd, void* data, size_t size) {
  char* p = static_cast<char*>(data);
  while (size > 0) {
    auto n = ::recv(fd, p, size, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) return Status{Errc::io_error, "peer closed the stream"};
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Status{Errc::io_error, "peer stream read timed out"};
    if (n < 0) return io_failure("peer stream read");
    p += n;
    size -= static_cast<size_t>(n);
  }
  return Status::Ok();
}

void set_timeouts(int fd, std::chrono::milliseconds timeout) {
  timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// Frames are sealed with AES-256-GCM (OpenSSL: AES-NI, several GB/s per
// core, where libsodium's secretbox manages under 1 GB/s) under the
// per-direction session key from crypto_kx, with the frame counter as nonce:
// a key never sees a nonce twice, and frames cannot be replayed or reordered.
constexpr size_t kTagBytes = 16;

bool aes_gcm(bool seal, const std::array<unsigned char, 32>& key, uint64_t counter, unsigned char* data, size_t size,
             unsigned char tag[kTagBytes]) {
  unsigned char nonce[12] = {};
  for (int i = 0; i < 8; ++i) nonce[i] = static_cast<unsigned char>(counter >> (8 * i));
  std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  if (!ctx || EVP_CipherInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), nonce, seal ? 1 : 0) != 1)
    return false;
  if (!seal && EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, tag) != 1) return false;
  // In place, in pieces (EVP lengths are int).
  for (size_t done = 0; done < size;) {
    int piece = static_cast<int>(std::min<size_t>(size - done, 1 << 30)), out = 0;
    if (EVP_CipherUpdate(ctx.get(), data + done, &out, data + done, piece) != 1) return false;
    done += static_cast<size_t>(piece);
  }
  int final_out = 0;
  if (EVP_CipherFinal_ex(ctx.get(), data + size, &final_out) != 1) return false;  // tag mismatch when opening
  return !seal || EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes, tag) == 1;
}

}  // namespace

Result<UniqueFd> connect_tcp(const std::string& address, std::chrono::milliseconds timeout) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos) return Status{Errc::bad_request, "not host:port: " + address};
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  if (::getaddrinfo(address.substr(0, colon).c_str(), address.substr(colon + 1).c_str(), &hints, &result) != 0 || !result)
    return Status{Errc::io_error, "cannot resolve " + address};
  UniqueFd fd(::socket(result->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  int rc = fd.valid() ? ::connect(fd.get(), result->ai_addr, result->ai_addrlen) : -1;
  ::freeaddrinfo(result);
  if (!fd.valid()) return io_failure("socket");
  if (rc != 0 && errno != EINPROGRESS) return Status{Errc::io_error, "cannot connect to " + address + ": " + std::strerror(errno)};
  pollfd p{fd.get(), POLLOUT, 0};
  if (rc != 0) {
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return Status{Errc::io_error, "connect to " + address + " timed out"};
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) return Status{Errc::io_error, "cannot connect to " + address + ": " + std::strerror(err)};
  }
  ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
  return fd;
}

Result<std::pair<UniqueFd, uint16_t>> listen_tcp(const std::string& address, const std::string& what) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos) return Status{Errc::config_invalid, what + " must be host:port"};
  std::string host = address.substr(0, colon);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::stoul(address.substr(colon + 1))));
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1)
    return Status{Errc::config_invalid, what + " host must be an IPv4 address: " + host};
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd.get(), 128) != 0)
    return Status{Errc::io_error, "cannot listen on " + what + " " + address + ": " + std::strerror(errno)};
  socklen_t len = sizeof addr;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  return std::make_pair(std::move(fd), ntohs(addr.sin_port));
}

void accept_connections(int listener, const std::atomic<bool>& stopping, std::atomic<int>& connections,
                        int max_connections, std::atomic<uint64_t>& refused,
                        const std::function<void(UniqueFd)>& serve) {
  while (!stopping) {
    pollfd p{listener, POLLIN, 0};
    if (::poll(&p, 1, 200) != 1) continue;
    UniqueFd fd(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
    if (!fd.valid()) continue;
    if (connections >= max_connections) {
      ++refused;  // closed on leaving scope
      continue;
    }
    ++connections;
    std::thread([&connections, serve, fd = std::move(fd)]() mutable {
      serve(std::move(fd));
      --connections;
    }).detach();
  }
}

Result<SecureChannel> SecureChannel::client(UniqueFd fd, const DataKey& key, std::chrono::milliseconds timeout) {
  return handshake(std::move(fd), key, true, timeout);
}

Result<SecureChannel> SecureChannel::server(UniqueFd fd, const DataKey& key, std::chrono::milliseconds timeout) {
  return handshake(std::move(fd), key, false, timeout);
}

Result<SecureChannel> SecureChannel::handshake(UniqueFd fd, const DataKey& key, bool is_client,
                                               std::chrono::milliseconds timeout) {
  if (sodium_init() < 0) return Status{Errc::io_error, "libsodium failed to initialise"};
  set_timeouts(fd.get(), timeout);
  unsigned char pk[crypto_kx_PUBLICKEYBYTES], sk[crypto_kx_SECRETKEYBYTES], peer[crypto_kx_PUBLICKEYBYTES];
  crypto_kx_keypair(pk, sk);
  if (auto s = write_all(fd.get(), pk, sizeof pk); !s) return s;
  if (auto s = read_all(fd.get(), peer, sizeof peer); !s) return s;
  // Transcript: client key, then server key.
  unsigned char transcript[2 * crypto_kx_PUBLICKEYBYTES + 1];
  std::memcpy(transcript, is_client ? pk : peer, crypto_kx_PUBLICKEYBYTES);
  std::memcpy(transcript + crypto_kx_PUBLICKEYBYTES, is_client ? peer : pk, crypto_kx_PUBLICKEYBYTES);
  unsigned char mine[crypto_auth_BYTES], theirs[crypto_auth_BYTES];
  transcript[sizeof transcript - 1] = is_client ? 'c' : 's';
  crypto_auth(mine, transcript, sizeof transcript, key.data());
  if (auto s = write_all(fd.get(), mine, sizeof mine); !s) return s;
  if (auto s = read_all(fd.get(), theirs, sizeof theirs); !s) return s;
  transcript[sizeof transcript - 1] = is_client ? 's' : 'c';
  if (crypto_auth_verify(theirs, transcript, sizeof transcript, key.data()) != 0)
    return Status{Errc::unauthorized, "peer does not hold the site key"};
  SecureChannel ch;
  int rc = is_client ? crypto_kx_client_session_keys(ch.rx_.data(), ch.tx_.data(), pk, sk, peer)
                     : crypto_kx_server_session_keys(ch.rx_.data(), ch.tx_.data(), pk, sk, peer);
  sodium_memzero(sk, sizeof sk);
  if (rc != 0) return Status{Errc::unauthorized, "bad peer key"};
  ch.fd_ = std::move(fd);
  return ch;
}

void SecureChannel::set_timeout(std::chrono::milliseconds timeout) { set_timeouts(fd_.get(), timeout); }

Status SecureChannel::send(std::string_view header, size_t payload_size, const PayloadFill& fill) {
  const size_t plain = 4 + header.size() + payload_size;
  if (plain > kMaxFrame) return Status{Errc::too_large, "frame too large"};
  // [sealed length][tag][header length | header | payload], sealed in place.
  constexpr size_t kPrefix = 4 + kTagBytes;
  std::unique_ptr<unsigned char[]> frame(new unsigned char[kPrefix + plain]);
  unsigned char* body = frame.get() + kPrefix;
  uint32_t sealed_len = htonl(static_cast<uint32_t>(kTagBytes + plain));
  uint32_t header_len = htonl(static_cast<uint32_t>(header.size()));
  std::memcpy(frame.get(), &sealed_len, 4);
  std::memcpy(body, &header_len, 4);
  std::memcpy(body + 4, header.data(), header.size());
  if (payload_size > 0)
    if (auto s = fill(body + 4 + header.size(), payload_size); !s) return s;
  if (!aes_gcm(true, tx_, tx_counter_++, body, plain, frame.get() + 4))
    return Status{Errc::io_error, "cannot seal a frame"};
  return write_all(fd_.get(), frame.get(), kPrefix + plain);
}

Result<Frame> SecureChannel::receive() {
  uint32_t len = 0;
  if (auto s = read_all(fd_.get(), &len, 4); !s) return s;
  len = ntohl(len);
  if (len < kTagBytes + 4 || len > kMaxFrame + kTagBytes)
    return Status{Errc::io_error, "bad frame length from peer"};
  Frame frame;
  frame.buffer.reset(new unsigned char[len]);
  if (auto s = read_all(fd_.get(), frame.buffer.get(), len); !s) return s;
  unsigned char* body = frame.buffer.get() + kTagBytes;
  const size_t plain = len - kTagBytes;
  if (!aes_gcm(false, rx_, rx_counter_++, body, plain, frame.buffer.get()))
    return Status{Errc::io_error, "peer frame failed authentication"};
  uint32_t header_len = 0;
  std::memcpy(&header_len, body, 4);
  header_len = ntohl(header_len);
  if (header_len > plain - 4) return Status{Errc::io_error, "bad frame header from peer"};
  const char* text = reinterpret_cast<const char*>(body);
  frame.header = std::string_view(text + 4, header_len);
  frame.payload = std::string_view(text + 4 + header_len, plain - 4 - header_len);
  return frame;
}

}  // namespace ep::transfer
