// ClusterGate (see cluster_gate.h): an asynchronous checked relay.
// Boost.Asio is included after <utility>.
#include <utility>

#include "transfer/cluster_gate.h"

#include <arpa/inet.h>

#include <array>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstring>
#include <optional>
#include <set>
#include <vector>

#include "base/log.h"

namespace ep::transfer {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

namespace {
constexpr size_t kHeaderSize = 32;
constexpr auto kConnectTimeout = std::chrono::seconds(2);
// The middleman's heartbeats keep a live connection busy well within this.
constexpr auto kIdleTimeout = std::chrono::seconds(30);

}  // namespace

class Relay;

struct ClusterGate::Impl {
  explicit Impl(IoPool& io) : strand(net::make_strand(io.context())), acceptor(strand) {}

  std::optional<tcp::endpoint> backend;  // the middleman's loopback port, once known
  std::atomic<uint64_t> refused{0};
  net::strand<net::io_context::executor_type> strand;  // every relay and the set below
  tcp::acceptor acceptor;
  std::set<std::shared_ptr<Relay>> relays;
  bool stopped = false;

  void accept();
};

// One peer connection and its loopback connection to the middleman.
class Relay : public std::enable_shared_from_this<Relay> {
 public:
  Relay(ClusterGate::Impl& gate, tcp::socket peer)
      : gate_(gate), peer_(std::move(peer)), backend_(gate.strand), idle_(gate.strand) {}

  void start(const tcp::endpoint& backend) {
    error_code ignored;
    peer_.set_option(tcp::no_delay(true), ignored);
    arm_idle(kConnectTimeout);
    backend_.async_connect(backend, [self = shared_from_this()](error_code ec) {
      if (ec) return self->close();
      error_code ignored;
      self->backend_.set_option(tcp::no_delay(true), ignored);
      self->arm_idle(kIdleTimeout);  // connected: from now on the peer's silence counts
      self->read_header();
      self->pump_back();
    });
  }

  // Ends both connections; pending operations complete with an error and
  // release their hold on this relay.
  void close() {
    if (closed_) return;
    closed_ = true;
    error_code ignored;
    peer_.close(ignored);
    backend_.close(ignored);
    idle_.cancel();
    gate_.relays.erase(shared_from_this());
  }

 private:
  // A completion queued before close() may still run: it must not start
  // anything new (a fresh timer would keep this relay alive for its span).
  void arm_idle(std::chrono::seconds after) {
    if (closed_) return;
    idle_.expires_after(after);
    idle_.async_wait([self = shared_from_this()](error_code ec) {
      if (!ec) self->close();
    });
  }

  // Peer -> middleman, header by header, refusing oversized payloads.
  void read_header() {
    net::async_read(peer_, net::buffer(header_), [self = shared_from_this()](error_code ec, size_t) {
      if (ec || self->closed_) return self->close();
      self->arm_idle(kIdleTimeout);
      uint32_t len;
      std::memcpy(&len, self->header_.data() + 4, 4);
      len = ntohl(len);
      if (len > ClusterGate::kMaxPayload) {
        ++self->gate_.refused;
        return self->close();
      }
      self->inbound_.resize(kHeaderSize + len);
      std::memcpy(self->inbound_.data(), self->header_.data(), kHeaderSize);
      self->read_payload();
    });
  }

  void read_payload() {
    net::async_read(peer_, net::buffer(inbound_.data() + kHeaderSize, inbound_.size() - kHeaderSize),
                    [self = shared_from_this()](error_code ec, size_t) {
                      if (ec) return self->close();
                      net::async_write(self->backend_, net::buffer(self->inbound_),
                                       [self](error_code e, size_t) {
                                         if (e) return self->close();
                                         self->read_header();
                                       });
                    });
  }

  // Middleman -> peer: a plain copy.
  void pump_back() {
    backend_.async_read_some(net::buffer(outbound_), [self = shared_from_this()](error_code ec, size_t n) {
      if (ec) return self->close();
      net::async_write(self->peer_, net::buffer(self->outbound_.data(), n), [self](error_code e, size_t) {
        if (e) return self->close();
        self->pump_back();
      });
    });
  }

  ClusterGate::Impl& gate_;
  tcp::socket peer_, backend_;
  net::steady_timer idle_;
  std::array<char, kHeaderSize> header_{};
  std::vector<char> inbound_;
  std::array<char, 64 << 10> outbound_{};
  bool closed_ = false;
};

void ClusterGate::Impl::accept() {
  acceptor.async_accept(strand, [this](error_code ec, tcp::socket socket) {
    if (stopped || ec == net::error::operation_aborted) return;
    if (!ec && relays.size() < static_cast<size_t>(kMaxConnections) && backend) {
      auto relay = std::make_shared<Relay>(*this, std::move(socket));
      relays.insert(relay);
      relay->start(*backend);
    } else if (!ec) {
      ++refused;  // the socket closes as it leaves scope
    }
    accept();
  });
}

ClusterGate::ClusterGate(IoPool& io, std::string backend_address) : impl_(std::make_unique<Impl>(io)) {
  set_backend(std::move(backend_address));
}

ClusterGate::~ClusterGate() { stop(); }

void ClusterGate::set_backend(std::string address) {
  auto endpoint = tcp_endpoint(address, "");
  impl_->backend = endpoint ? std::optional<tcp::endpoint>(*endpoint) : std::nullopt;
}

uint64_t ClusterGate::connections_refused() const { return impl_->refused; }

Result<uint16_t> ClusterGate::listen(const std::string& address) {
  return listen_on(impl_->acceptor, address, "cluster address");
}

void ClusterGate::start() {
  net::post(impl_->strand, [impl = impl_.get()] { impl->accept(); });
}

void ClusterGate::stop() {
  auto& impl = *impl_;
  if (impl.stopped) return;
  impl.stopped = true;
  error_code ignored;
  impl.acceptor.close(ignored);
  auto relays = impl.relays;
  for (const auto& relay : relays) relay->close();
}

}  // namespace ep::transfer
