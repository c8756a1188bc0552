// Session: one client connection of the registry's HTTP server, internal to
// http/ (session.cc: the request flow, from header to reply; session_io.cc:
// body reads, reply writes, sendfile(2) and the lingering close).
//
// Owns itself (shared_from_this) until the connection closes; every
// handler runs on the connection's strand, so its members need no lock.
// `api`, `metrics`, `limits` and `workers` outlive it (the Server stops its
// threads and workers before they go). A TLS connection's handshake comes
// first, within the header timeout. Boost.Asio is included after <utility>.
#pragma once

#include <utility>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http/api.h"
#include "http/server.h"
#include "http/stream.h"

namespace ep::http {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

// The guard at the HTTP boundary. Called only inside a catch block: the
// exception a handler threw ends its one request with a 500 OCI error and
// one log line, and the node keeps serving.
Reply internal_error_reply(const char* where);

class Session : public std::enable_shared_from_this<Session> {
 public:
  // `tls` null: plain HTTP.
  Session(tcp::socket socket, std::shared_ptr<net::ssl::context> tls, RequestHandler& api, Metrics& metrics,
          const ServerLimits& limits, BlockingPool& workers);
  ~Session() { metrics_.connection_closed(); }

  void start();

  // Answers `status` without reading the request, then closes lingering.
  void refuse(Status status);

 private:
  // The TLS handshake (within the header timeout), then `next`; at once for plain HTTP.
  void after_handshake(std::function<void()> next);
  void handshake(std::function<void()> next);
  // Plain HTTP on the HTTPS port: one 400 in plain HTTP saying so, then close.
  void refuse_plain_http();
  void read_header();
  void on_header(beast::error_code ec, size_t n);
  void decide(bool prepared);

  // The handler asked for blocking work before it decides (e.g. evicting
  // cached blobs to make room): on the pool, then handled again here.
  void prepare();
  void answer_later();

  // Reads the body as the Handling says, or answers at once.
  void proceed();

  void read_body();
  void read_raw();

  // Hands `got` body bytes in chunk_ to the handler; false when the request
  // has been answered (or the connection dropped) instead.
  bool deliver(size_t got);
  void on_body(beast::error_code ec);
  void reject(const Status& status);
  void reject(Reply reply);
  void finish();

  // Work that may block runs on the blocking pool; its reply is written
  // back on this connection's strand.
  void run_on_pool(std::function<Reply()> work);
  void write_reply();
  void on_header_written(beast::error_code ec, size_t n);
  void send_file();
  // A blob over TLS: read from the file into chunk_, written through TLS
  // (sendfile cannot encrypt).
  void send_file_tls();
  // For a blob still arriving: bounds `slice` by what is readable. False
  // when nothing is yet (`resume` runs once more is) or the blob failed
  // (the connection ends).
  bool readable_slice(uint64_t& slice, void (Session::*resume)());
  void done();

  // The access log, at debug: client, request line, status, bytes, time.
  void log_access(double seconds);

  // After a complete reply on a connection that ends (often with request
  // body left unread, e.g. a 413 or a failed upload): half-close, then read
  // and discard for a moment before closing. Closing with unread input makes
  // the kernel send RST, which can destroy the reply before the client
  // has read it.
  void linger_close();
  void drain(size_t discarded);
  void shutdown();

  ClientStream stream_;
  access::Caller caller_;
  net::steady_timer send_timer_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::buffer_body>> parser_;
  std::optional<bhttp::response<bhttp::empty_body>> response_;
  std::optional<bhttp::response_serializer<bhttp::empty_body>> serializer_;
  std::vector<char> chunk_;
  std::string body_;
  uint64_t consumed_ = 0;
  RouteKind route_ = RouteKind::unknown;
  Handling handling_;
  Reply reply_;
  bool head_request_ = false, keep_alive_ = true;
  unsigned version_ = 11;
  uint64_t raw_remaining_ = 0;
  Clock::time_point started_;
  std::string access_line_;  // method and target, kept only when the access log is on
  RequestHandler& api_;
  Metrics& metrics_;
  const ServerLimits& limits_;
  BlockingPool& workers_;
};

}  // namespace ep::http
