// Server (see server.h): the acceptor; each connection is a Session
// (session.cc). Boost.Asio is included after <utility>.
#include <utility>

#include "http/server.h"
#include "http/session.h"
#include "base/log.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
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
      socket.set_option(tcp::no_delay(true), ec);
      auto context = std::atomic_load(&tls);
      if (at_capacity())
        refuse_session(std::move(socket), std::move(context), api, metrics, limits, workers,
                       Status{Errc::overloaded, "too many connections to this node (http-max-connections " +
                                                    std::to_string(limits.max_connections) + "); retry later"});
      else
        start_session(std::move(socket), std::move(context), api, metrics, limits, workers);
      accept();
    });
  }

  // On the acceptor's strand. Says once when the cap is reached and once
  // when the node is well below it again, not once per connection.
  bool at_capacity() {
    auto open = static_cast<size_t>(metrics.open_connections());
    if (open >= limits.max_connections) {
      ++refused;
      if (!refusing)
        log_warning("http", "open connections reached http-max-connections (" + std::to_string(limits.max_connections) +
                                "): new connections get 503 until some close");
      refusing = true;
      return true;
    }
    if (refusing && open < limits.max_connections - limits.max_connections / 10) {
      log_info("http", "open connections below the cap again; " + std::to_string(refused) + " refused meanwhile");
      refusing = false;
      refused = 0;
    }
    return false;
  }

  RequestHandler& api;
  Metrics& metrics;
  ServerLimits limits;
  tcp::acceptor acceptor;
  net::steady_timer retry{acceptor.get_executor()};
  BlockingPool& workers;
  IoPool& io;
  std::shared_ptr<net::ssl::context> tls;  // null: plain HTTP; std::atomic_load/store only
  bool refusing = false;  // at the cap since the last "below the cap again"
  uint64_t refused = 0;
};

Server::Server(IoPool& io, RequestHandler& api, Metrics& metrics, BlockingPool& blocking, ServerLimits limits)
    : impl_(std::make_unique<Impl>(io, api, metrics, blocking, limits)) {}

Server::~Server() = default;

Result<unsigned short> Server::listen(const std::string& address) {
  return listen_on(impl_->acceptor, address, "");
}

Status Server::use_tls(const std::string& cert_file, const std::string& key_file) {
  auto context = std::make_shared<net::ssl::context>(net::ssl::context::tls_server);
  context->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                       net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 | net::ssl::context::no_tlsv1_1 |
                       net::ssl::context::single_dh_use);
  beast::error_code ec;
  context->use_certificate_chain_file(cert_file, ec);
  if (ec) return Status{Errc::config_invalid, "tls-cert-file " + cert_file + ": " + ec.message()};
  context->use_private_key_file(key_file, net::ssl::context::pem, ec);
  if (ec) return Status{Errc::config_invalid, "tls-key-file " + key_file + ": " + ec.message()};
  if (SSL_CTX_check_private_key(context->native_handle()) != 1)
    return Status{Errc::config_invalid, "tls-key-file " + key_file + " does not match tls-cert-file " + cert_file};
  std::atomic_store(&impl_->tls, std::move(context));
  return Status::Ok();
}

void Server::start() {
  net::post(impl_->acceptor.get_executor(), [impl = impl_.get()] { impl->accept(); });
}

}  // namespace ep::http
