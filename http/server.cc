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
#include <chrono>

namespace ep::http {

namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;

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
  return listen_on(impl_->acceptor, address, "");
}

void Server::start() {
  net::post(impl_->acceptor.get_executor(), [impl = impl_.get()] { impl->accept(); });
}

}  // namespace ep::http
