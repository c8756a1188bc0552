// Server (see server.h): the acceptor; each connection is a Session
// (session.cc). Boost.Asio is included after <utility>.
#include <utility>

#include "http/server.h"
#include "http/session.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <chrono>

namespace ep::http {

namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;

bool split_host_port(const std::string& address, std::string& host, unsigned short& port) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos || colon + 1 >= address.size()) return false;
  host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  auto p = address.substr(colon + 1);
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
  if (ec != std::errc() || ptr != p.data() + p.size() || value > 65535 || host.empty()) return false;
  port = static_cast<unsigned short>(value);
  return true;
}


struct Server::Impl {
  Impl(IoPool& io, RequestHandler& a, Metrics& m, BlockingPool& b, ServerLimits l)
      : api(a), metrics(m), limits(l), acceptor(net::make_strand(io.context())), workers(b), io(io) {}

  void accept() {
    acceptor.async_accept(net::make_strand(io.context()), [this](beast::error_code ec, tcp::socket socket) {
      if (ec == net::error::operation_aborted) return;
      if (ec) {  // e.g. out of file descriptors: back off instead of spinning
        retry.expires_after(std::chrono::milliseconds(100));
        return retry.async_wait([this](beast::error_code wait_ec) {
          if (!wait_ec) accept();
        });
      }
      if (static_cast<size_t>(metrics.open_connections()) >= limits.max_connections) {
        beast::error_code ignored;
        socket.close(ignored);
      } else {
        socket.set_option(tcp::no_delay(true), ec);
        start_session(std::move(socket), api, metrics, limits, workers);
      }
      accept();
    });
  }

  RequestHandler& api;
  Metrics& metrics;
  ServerLimits limits;
  tcp::acceptor acceptor;
  net::steady_timer retry{acceptor.get_executor()};
  BlockingPool& workers;
  IoPool& io;
};

Server::Server(IoPool& io, RequestHandler& api, Metrics& metrics, BlockingPool& blocking, ServerLimits limits)
    : impl_(std::make_unique<Impl>(io, api, metrics, blocking, limits)) {}

Server::~Server() = default;

Result<unsigned short> Server::listen(const std::string& address) {
  std::string host;
  unsigned short port = 0;
  if (!split_host_port(address, host, port))
    return Status{Errc::config_invalid, "not a host:port address: " + address};
  beast::error_code ec;
  auto ip = net::ip::make_address(host, ec);
  if (ec) return Status{Errc::config_invalid, "not an IP address: " + host};
  tcp::endpoint endpoint(ip, port);
  auto& acc = impl_->acceptor;
  acc.open(endpoint.protocol(), ec);
  if (!ec) acc.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acc.bind(endpoint, ec);
  if (!ec) acc.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return Status{Errc::io_error, "cannot listen on " + address + ": " + ec.message()};
  return acc.local_endpoint().port();
}

void Server::start() {
  net::post(impl_->acceptor.get_executor(), [impl = impl_.get()] { impl->accept(); });
}

}  // namespace ep::http
