#include "transfer/secure_channel.h"


#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cerrno>
#include <cstring>
#include <thread>

namespace ep::transfer {

namespace {

Status io_failure(const char* what) { return Status{Errc::io_error, std::string(what) + ": " + std::strerror(errno)}; }

// `more`: further bytes of the frame follow at once, so the kernel may hold
// this piece back to fill whole segments (MSG_MORE).
Status write_all(int fd, const void* data, size_t size, bool more = false) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    auto n = ::send(fd, p, size, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
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
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Status{Errc::timed_out, "peer stream read timed out"};
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

}  // namespace

Result<SocketAddress> resolve_tcp(const std::string& address) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos) return Status{Errc::bad_request, "not host:port: " + address};
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  if (::getaddrinfo(address.substr(0, colon).c_str(), address.substr(colon + 1).c_str(), &hints, &result) != 0 || !result)
    return Status{Errc::io_error, "cannot resolve " + address};
  SocketAddress found;
  found.size = std::min<socklen_t>(result->ai_addrlen, sizeof found.storage);
  std::memcpy(&found.storage, result->ai_addr, found.size);
  ::freeaddrinfo(result);
  return found;
}

Result<UniqueFd> connect_tcp(const std::string& address, std::chrono::milliseconds timeout) {
  auto peer = resolve_tcp(address);
  if (!peer) return peer.status();
  UniqueFd fd(::socket(peer->storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  int rc = fd.valid() ? ::connect(fd.get(), peer->get(), peer->size) : -1;
  if (!fd.valid()) return io_failure("socket");
  if (rc != 0 && errno != EINPROGRESS) return Status{Errc::io_error, "cannot connect to " + address + ": " + std::strerror(errno)};
  pollfd p{fd.get(), POLLOUT, 0};
  if (rc != 0) {
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return Status{Errc::timed_out, "connect to " + address + " timed out"};
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
  unsigned port = 0;
  const char* digits = address.data() + colon + 1;
  auto [end, ec] = std::from_chars(digits, address.data() + address.size(), port);
  if (ec != std::errc() || end != address.data() + address.size() || end == digits || port > 65535)
    return Status{Errc::config_invalid, what + " port must be a number up to 65535: " + address};
  addr.sin_port = htons(static_cast<uint16_t>(port));
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

Result<SecureChannel> SecureChannel::client(UniqueFd fd, const DataKey& key, std::chrono::milliseconds timeout) {
  return handshake(std::move(fd), key, true, timeout);
}

Result<SecureChannel> SecureChannel::server(UniqueFd fd, const DataKey& key, std::chrono::milliseconds timeout) {
  return handshake(std::move(fd), key, false, timeout);
}

Result<SecureChannel> SecureChannel::handshake(UniqueFd fd, const DataKey& key, bool is_client,
                                               std::chrono::milliseconds timeout) {
  set_timeouts(fd.get(), timeout);
  Handshake hs(is_client);
  unsigned char peer[kPublicKeyBytes], theirs[kProofBytes];
  if (auto s = write_all(fd.get(), hs.public_key(), kPublicKeyBytes); !s) return s;
  if (auto s = read_all(fd.get(), peer, sizeof peer); !s) return s;
  const auto mine = hs.proof(peer, key);
  if (auto s = write_all(fd.get(), mine.data(), mine.size()); !s) return s;
  if (auto s = read_all(fd.get(), theirs, sizeof theirs); !s) return s;
  SecureChannel ch;
  if (auto s = hs.finish(peer, theirs, key, ch.rx_, ch.tx_); !s) return s;
  ch.fd_ = std::move(fd);
  return ch;
}

void SecureChannel::set_timeout(std::chrono::milliseconds timeout) { set_timeouts(fd_.get(), timeout); }

SecureChannel::State SecureChannel::release() && {
  return State{std::move(fd_), rx_, tx_, rx_counter_, tx_counter_};
}

SecureChannel SecureChannel::adopt(State state) {
  ::fcntl(state.fd.get(), F_SETFL, ::fcntl(state.fd.get(), F_GETFL) & ~O_NONBLOCK);
  SecureChannel ch;
  ch.fd_ = std::move(state.fd);
  ch.rx_ = state.rx;
  ch.tx_ = state.tx;
  ch.rx_counter_ = state.rx_counter;
  ch.tx_counter_ = state.tx_counter;
  return ch;
}

Status SecureChannel::send(std::string_view header, size_t payload_size, const PayloadFill& fill) {
  FrameWriter frame(tx_, tx_counter_++, header, payload_size);
  while (!frame.done()) {
    auto piece = frame.next(fill);
    if (!piece) return piece.status();
    if (auto s = write_all(fd_.get(), piece->first, piece->second, /*more=*/!frame.done()); !s) return s;
  }
  return Status::Ok();
}

Status SecureChannel::receive(const FrameSink& sink) {
  uint32_t len = 0;
  if (auto s = read_all(fd_.get(), &len, 4); !s) return s;
  len = ntohl(len);
  if (len < kTagBytes + 4 || len > kMaxFrame + kTagBytes) return Status{Errc::io_error, "bad frame length from peer"};
  const uint64_t plain = len - kTagBytes;
  FrameCipher cipher(false, rx_, rx_counter_++);
  unsigned char header_len_bytes[4];
  if (auto s = read_all(fd_.get(), header_len_bytes, 4); !s) return s;
  cipher.update(header_len_bytes, 4);
  uint32_t header_len = 0;
  std::memcpy(&header_len, header_len_bytes, 4);
  header_len = ntohl(header_len);
  if (header_len > plain - 4) return Status{Errc::io_error, "bad frame header from peer"};
  std::string header(header_len, '\0');
  if (auto s = read_all(fd_.get(), header.data(), header.size()); !s) return s;
  cipher.update(reinterpret_cast<unsigned char*>(header.data()), header.size());
  const uint64_t payload = plain - 4 - header_len;
  if (sink.begin)
    if (auto s = sink.begin(header, payload); !s) return s;
  if (payload > 0 && !sink.bytes) return Status{Errc::io_error, "unexpected payload from peer"};
  if (payload > 0 && !slice_) slice_.reset(new unsigned char[kSlice]);
  for (uint64_t done = 0; done < payload;) {
    const size_t n = std::min<uint64_t>(payload - done, kSlice);
    if (auto s = read_all(fd_.get(), slice_.get(), n); !s) return s;
    if (!cipher.update(slice_.get(), n)) return Status{Errc::io_error, "cannot open a frame"};
    if (auto s = sink.bytes(slice_.get(), n); !s) return s;
    done += n;
  }
  unsigned char tag[kTagBytes];
  if (auto s = read_all(fd_.get(), tag, kTagBytes); !s) return s;
  if (!cipher.tag_matches(tag)) return Status{Errc::io_error, "peer frame failed authentication"};
  return Status::Ok();
}

Result<Frame> SecureChannel::receive() {
  Frame frame;
  FrameSink whole{[&](std::string_view header, uint64_t payload_size) {
                    frame.header = header;
                    frame.payload.reserve(payload_size);
                    return Status::Ok();
                  },
                  [&](const unsigned char* data, size_t size) {
                    frame.payload.append(reinterpret_cast<const char*>(data), size);
                    return Status::Ok();
                  }};
  if (auto s = receive(whole); !s) return s;
  return frame;
}

}  // namespace ep::transfer
