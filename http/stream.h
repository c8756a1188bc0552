// ClientStream: one registry connection's byte stream, plain TCP or TLS,
// chosen when the connection is accepted (the Server's tls setting).
//
// Models Asio's AsyncReadStream and AsyncWriteStream, so Beast's HTTP
// reads and writes run on it unchanged; each operation goes to the TLS
// stream or the TCP stream. The TCP layer (tcp()) carries the timeouts
// and the socket for either. Used only on its connection's strand.
// Boost.Asio is included after <utility>.
#pragma once

#include <utility>

#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <memory>
#include <optional>

namespace ep::http {

class ClientStream {
 public:
  using executor_type = boost::beast::tcp_stream::executor_type;

  // `tls` null: plain HTTP. Otherwise the context stays alive with the
  // connection (a reload of the certificate makes a new one).
  ClientStream(boost::asio::ip::tcp::socket socket, std::shared_ptr<boost::asio::ssl::context> tls) : tls_context_(std::move(tls)) {
    if (tls_context_)
      tls_.emplace(std::move(socket), *tls_context_);
    else
      plain_.emplace(std::move(socket));
  }

  bool tls() const { return tls_.has_value(); }
  boost::beast::tcp_stream& tcp() { return tls_ ? tls_->next_layer() : *plain_; }
  executor_type get_executor() { return tcp().get_executor(); }
  boost::beast::ssl_stream<boost::beast::tcp_stream>& tls_stream() { return *tls_; }

  template <class Buffers, class Handler>
  void async_read_some(const Buffers& buffers, Handler&& handler) {
    if (tls_)
      tls_->async_read_some(buffers, std::forward<Handler>(handler));
    else
      plain_->async_read_some(buffers, std::forward<Handler>(handler));
  }

  template <class Buffers, class Handler>
  void async_write_some(const Buffers& buffers, Handler&& handler) {
    if (tls_)
      tls_->async_write_some(buffers, std::forward<Handler>(handler));
    else
      plain_->async_write_some(buffers, std::forward<Handler>(handler));
  }

 private:
  std::shared_ptr<boost::asio::ssl::context> tls_context_;
  std::optional<boost::beast::tcp_stream> plain_;
  std::optional<boost::beast::ssl_stream<boost::beast::tcp_stream>> tls_;
};

}  // namespace ep::http
