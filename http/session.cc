// Session (session_impl.h): the request flow, from header to reply: reads a
// request header, asks the handler how to treat it (prepare, body mode,
// deferred work), finishes it on the I/O strand or the blocking pool, and
// keeps the access log.
#include "http/session_impl.h"

#include <sys/socket.h>

#include "base/json_text.h"
#include "base/log.h"
#include "http/oci_errors.h"
#include "http/session.h"

namespace ep::http {

Reply internal_error_reply(const char* where) { return error_reply(internal_error(where)); }

namespace {
// An IPv4 client of a dual-stack listener as IPv4.
net::ip::address unmapped(const net::ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped()) return net::ip::make_address_v4(net::ip::v4_mapped, a.to_v6());
  return a;
}

// The blocking pool refused work: it is stopping with the node.
Status shutting_down() { return Status{Errc::upstream_unavailable, "the node is shutting down"}; }
}  // namespace

Session::Session(tcp::socket socket, std::shared_ptr<net::ssl::context> tls, RequestHandler& api, Metrics& metrics,
                 const ServerLimits& limits, BlockingPool& workers)
    : stream_(std::move(socket), std::move(tls)), send_timer_(stream_.get_executor()), api_(api), metrics_(metrics),
      limits_(limits), workers_(workers) {
  metrics_.connection_opened();
  beast::error_code peer_ec, local_ec;
  auto peer = stream_.tcp().socket().remote_endpoint(peer_ec);
  auto local = stream_.tcp().socket().local_endpoint(local_ec);
  if (!peer_ec && !local_ec) {
    auto address = unmapped(peer.address());
    caller_.address = address.to_string();
    caller_.same_host = address.is_loopback() || address == unmapped(local.address());
  } else {
    caller_.address = "-";
  }
  caller_.tls = stream_.tls();
}

void Session::start() {
  after_handshake([self = shared_from_this()] { self->read_header(); });
}

void Session::after_handshake(std::function<void()> next) {
  if (!stream_.tls()) return net::dispatch(stream_.get_executor(), std::move(next));
  // The first byte tells a TLS client (a handshake record, 0x16) from one
  // that speaks plain HTTP to this HTTPS port: that one is told so.
  send_timer_.expires_after(limits_.header_timeout);
  send_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
    beast::error_code ignored;
    if (!ec) self->stream_.tcp().socket().close(ignored);  // silent client
  });
  stream_.tcp().socket().async_wait(
      tcp::socket::wait_read, [self = shared_from_this(), next = std::move(next)](beast::error_code ec) mutable {
        self->send_timer_.cancel();
        if (ec) return self->shutdown();
        unsigned char first = 0;
        if (::recv(self->stream_.tcp().socket().native_handle(), &first, 1, MSG_PEEK) == 1 && first != 0x16)
          return self->refuse_plain_http();
        self->handshake(std::move(next));
      });
}

void Session::refuse_plain_http() {
  auto reply = error_reply(Status{Errc::bad_request, "this registry listener serves HTTPS: use https:// (and trust "
                                                     "its CA), not http://"});
  auto text = std::make_shared<std::string>("HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                                            "Content-Length: " + std::to_string(reply.body.size()) +
                                            "\r\nConnection: close\r\n\r\n" + reply.body);
  net::async_write(stream_.tcp(), net::buffer(*text), [self = shared_from_this(), text](beast::error_code ec, size_t) {
    if (ec) return self->shutdown();
    self->linger_close();
  });
}

void Session::handshake(std::function<void()> next) {
  stream_.tcp().expires_after(limits_.header_timeout);
  stream_.tls_stream().async_handshake(
      net::ssl::stream_base::server, [self = shared_from_this(), next = std::move(next)](beast::error_code ec) {
        if (ec) {  // not TLS, an untrusted certificate, or too slow: nothing to answer
          log_debug("http", "TLS handshake with " + self->caller_.address + " failed: " + ec.message());
          return self->shutdown();
        }
        next();
      });
}

// Answers `status` without reading the request, then closes lingering.
void Session::refuse(Status status) {
  after_handshake([self = shared_from_this(), status = std::move(status)] {
    self->started_ = Clock::now();
    self->reply_ = error_reply(status);
    self->reply_.header("Retry-After", "1");
    self->reply_.close = true;
    self->write_reply();
  });
}

void Session::read_header() {
  parser_.emplace();
  parser_->header_limit(static_cast<uint32_t>(limits_.header_bytes));
  parser_->body_limit(std::numeric_limits<std::uint64_t>::max());  // none is broken in Boost 1.74
  body_.clear();
  consumed_ = 0;
  stream_.tcp().expires_after(limits_.header_timeout);
  bhttp::async_read_header(stream_, buffer_, *parser_,
                           [self = shared_from_this()](beast::error_code ec, size_t n) { self->on_header(ec, n); });
}

void Session::on_header(beast::error_code ec, size_t n) {
  metrics_.add_bytes_in(n);
  if (ec == bhttp::error::end_of_stream || ec == net::error::eof || ec == beast::error::timeout ||
      ec == net::error::connection_reset || ec == net::error::operation_aborted)
    return shutdown();
  started_ = Clock::now();
  if (ec) {
    // Malformed or oversized header: answer once, then close.
    Status status = ec == bhttp::error::header_limit
                        ? Status{Errc::bad_request, "request header too large"}
                        : Status{Errc::bad_request, "malformed HTTP request: " + ec.message()};
    reply_ = error_reply(status);
    if (ec == bhttp::error::header_limit) reply_.status = 431;
    reply_.close = true;
    head_request_ = false;
    keep_alive_ = false;
    version_ = 11;
    route_ = RouteKind::unknown;
    return write_reply();
  }
  const auto& head = parser_->get().base();
  if (log_enabled(LogLevel::debug)) {
    access_line_ = std::string(head.method_string()) + " ";
    // Quoted in the line: a quote in the target is escaped like other odd bytes.
    for (char c : printable({head.target().data(), head.target().size()}, 1024))
      if (c == '"')
        access_line_.append("\\x22");
      else
        access_line_.push_back(c);
  }
  head_request_ = head.method() == bhttp::verb::head;
  keep_alive_ = parser_->get().keep_alive();
  version_ = parser_->get().version() == 10 ? 10 : 11;
  decide(/*prepared=*/false);
  if (handling_.prepare) return prepare();
  proceed();
}

// Asks the handler how to treat this request (again, once prepared); an
// exception it throws becomes this request's 500.
void Session::decide(bool prepared) {
  const auto& head = parser_->get().base();
  try {
    handling_ = prepared ? api_.handle_prepared(head, caller_) : api_.handle(head, caller_);
  } catch (...) {
    handling_ = Handling{};
    handling_.reply = internal_error_reply("a request handler");
  }
}

// The handler asked for blocking work before it decides (e.g. evicting
// cached blobs to make room): on the pool, then handled again here.
void Session::prepare() {
  auto work = std::move(handling_.prepare);
  const bool queued = workers_.post([self = shared_from_this(), work = std::move(work)] {
    try {
      work();
    } catch (...) {
      internal_error("a request's preparation");
    }
    net::post(self->stream_.get_executor(), [self] {
      self->decide(/*prepared=*/true);
      self->proceed();
    });
  });
  if (!queued) reject(shutting_down());
}

// Reads the body as the Handling says, or answers at once.
void Session::proceed() {
  const auto& head = parser_->get().base();
  route_ = handling_.route;
  if (parser_->is_done()) return finish();
  if (handling_.reply && bhttp::token_list(head[bhttp::field::expect]).exists("100-continue")) {
    // The client waits for our go-ahead: answer now and never read the body.
    handling_.reply->close = true;
    return finish();
  }
  if (bhttp::token_list(head[bhttp::field::expect]).exists("100-continue")) {
    auto cont = std::make_shared<std::string>("HTTP/1.1 100 Continue\r\n\r\n");
    return net::async_write(stream_, net::buffer(*cont), [self = shared_from_this(), cont](beast::error_code e, size_t) {
      if (e) return self->shutdown();
      self->read_body();
    });
  }
  read_body();
}

void Session::reject(const Status& status) { reject(error_reply(status)); }

void Session::reject(Reply reply) {
  handling_ = Handling{};
  reply_ = std::move(reply);
  reply_.close = true;
  write_reply();
}

void Session::finish() {
  if (handling_.finish && handling_.finish_waits) {
    // The request is complete; what it does may wait (a database write,
    // the site actor): off the I/O thread.
    struct Pending {
      std::function<Reply(std::string, std::unique_ptr<UploadAppender>)> finish;
      std::string body;
      std::unique_ptr<UploadAppender> appender;
    };
    auto pending = std::make_shared<Pending>(
        Pending{std::move(handling_.finish), std::move(body_), std::move(handling_.appender)});
    handling_ = Handling{};
    return run_on_pool([pending] { return pending->finish(std::move(pending->body), std::move(pending->appender)); });
  }
  if (handling_.deferred) {
    auto work = std::move(handling_.deferred);
    handling_ = Handling{};
    return run_on_pool(std::move(work));
  }
  if (handling_.answers_later || handling_.finish_later) return answer_later();
  if (handling_.reply)
    reply_ = std::move(*handling_.reply);
  else if (handling_.finish)
    try {
      reply_ = handling_.finish(std::move(body_), std::move(handling_.appender));
    } catch (...) {
      reply_ = internal_error_reply("a request handler");
    }
  else
    reply_ = error_reply(Status{Errc::io_error, "no handler"});
  handling_ = Handling{};
  write_reply();
}

// Work that may block runs on the blocking pool; its reply is written
// back on this connection's strand.
void Session::run_on_pool(std::function<Reply()> work) {
  const bool queued = workers_.post([self = shared_from_this(), work = std::move(work)]() mutable {
    std::shared_ptr<Reply> reply;
    try {
      reply = std::make_shared<Reply>(work());
    } catch (...) {
      reply = std::make_shared<Reply>(internal_error_reply("a request handler"));
    }
    net::post(self->stream_.get_executor(), [self, reply] {
      self->reply_ = std::move(*reply);
      self->write_reply();
    });
  });
  if (!queued) reject(shutting_down());
}

// The handler answers without blocking, later: its reply, from whatever
// thread, is written back on this connection's strand.
void Session::answer_later() {
  std::function<void(std::function<void(Reply)>)> start = std::move(handling_.answers_later);
  if (handling_.finish_later)
    start = [finish = std::move(handling_.finish_later), body = std::move(body_)](std::function<void(Reply)> send) {
      finish(body, std::move(send));
    };
  handling_ = Handling{};
  auto answered = std::make_shared<std::atomic<bool>>(false);
  auto send = [self = shared_from_this(), answered](Reply r) {
    if (answered->exchange(true)) return;  // a handler that answers twice: the first reply counts
    auto reply = std::make_shared<Reply>(std::move(r));
    net::post(self->stream_.get_executor(), [self, reply] {
      self->reply_ = std::move(*reply);
      self->write_reply();
    });
  };
  try {
    start(send);
  } catch (...) {
    send(internal_error_reply("a request handler"));
  }
}

void Session::done() {
  const double seconds = std::chrono::duration<double>(Clock::now() - started_).count();
  metrics_.record(route_, reply_.status, seconds);
  if (!access_line_.empty()) log_access(seconds);
  reply_ = Reply{};
  serializer_.reset();
  response_.reset();
  if (!keep_alive_) return linger_close();
  read_header();
}

// The access log, at debug: client, request line, status, bytes, time.
void Session::log_access(double seconds) {
  uint64_t length = reply_.file ? reply_.file->length : reply_.head_length.value_or(reply_.body.size());
  log_debug("access", caller_.address + " \"" + access_line_ + "\" " +
                          std::to_string(reply_.status) + " " + std::to_string(head_request_ ? 0 : length) + " " +
                          std::to_string(static_cast<uint64_t>(seconds * 1000)) + "ms");
  access_line_.clear();
}

void start_session(tcp::socket socket, std::shared_ptr<net::ssl::context> tls, RequestHandler& api, Metrics& metrics,
                   const ServerLimits& limits, BlockingPool& workers) {
  std::make_shared<Session>(std::move(socket), std::move(tls), api, metrics, limits, workers)->start();
}

void refuse_session(tcp::socket socket, std::shared_ptr<net::ssl::context> tls, RequestHandler& api,
                    Metrics& metrics, const ServerLimits& limits, BlockingPool& workers, Status why) {
  std::make_shared<Session>(std::move(socket), std::move(tls), api, metrics, limits, workers)->refuse(std::move(why));
}

}  // namespace ep::http
