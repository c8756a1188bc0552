#include "transfer/cluster_gate.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "transfer/secure_channel.h"

namespace ep::transfer {

namespace {
constexpr int kMaxConnections = 256;
constexpr size_t kHeaderSize = 32;

bool read_exact(int fd, char* data, size_t size) {
  while (size > 0) {
    auto n = ::recv(fd, data, size, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

bool write_exact(int fd, const char* data, size_t size) {
  while (size > 0) {
    auto n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}
}  // namespace

ClusterGate::~ClusterGate() { stop(); }

Result<uint16_t> ClusterGate::listen(const std::string& address) {
  auto bound = listen_tcp(address, "cluster address");
  if (!bound) return bound.status();
  listener_ = std::move(bound->first);
  return bound->second;
}

void ClusterGate::start() {
  acceptor_ = std::thread([this] {
    accept_connections(listener_.get(), stopping_, connections_, kMaxConnections, refused_,
                       [this](UniqueFd fd) { relay(std::move(fd)); });
  });
}

void ClusterGate::stop() {
  stopping_ = true;
  if (acceptor_.joinable()) acceptor_.join();
}

void ClusterGate::relay(UniqueFd client) {
  auto backend = connect_tcp(backend_, std::chrono::milliseconds(2000));
  if (!backend) return;
  int one = 1;
  ::setsockopt(client.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::setsockopt(backend->get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval idle{30, 0};  // the middleman's heartbeats keep a live connection busy
  ::setsockopt(client.get(), SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof idle);
  const int in = client.get(), out = backend->get();
  // Backend -> peer: plain copy on its own thread.
  std::thread back([in, out] {
    std::vector<char> buf(64 << 10);
    while (true) {
      auto n = ::recv(out, buf.data(), buf.size(), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0 || !write_exact(in, buf.data(), static_cast<size_t>(n))) break;
    }
    ::shutdown(in, SHUT_RDWR);
  });
  // Peer -> backend: header by header, refusing oversized payloads.
  std::vector<char> payload;
  char header[kHeaderSize];
  while (read_exact(in, header, kHeaderSize)) {
    uint32_t len;
    std::memcpy(&len, header + 4, 4);
    len = ntohl(len);
    if (len > kMaxPayload) {
      ++refused_;
      break;
    }
    payload.resize(len);
    if (!read_exact(in, payload.data(), len)) break;
    if (!write_exact(out, header, kHeaderSize) || !write_exact(out, payload.data(), len)) break;
  }
  ::shutdown(out, SHUT_RDWR);
  ::shutdown(in, SHUT_RDWR);
  back.join();
}

}  // namespace ep::transfer
