// Session: one client connection of the registry's HTTP server: reads
// requests (bodies streamed to the handler on the worker pool), writes
// replies, sends blobs with sendfile(2), and closes lingering so a client
// still sending gets its reply. Owns itself until the connection closes.
// Boost.Asio is included after <utility>.
#include <utility>

#include "http/session.h"

#include <sys/sendfile.h>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <chrono>
#include <limits>
#include <functional>
#include <optional>

#include "base/json_text.h"
#include "base/log.h"
#include "http/oci_errors.h"

namespace ep::http {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {
constexpr size_t kChunk = 1 << 20;
constexpr size_t kSendfileSlice = 4 << 20;
constexpr uint64_t kYieldAfter = 64 << 20;  // let other connections run on this thread

// The guard at the HTTP boundary. Called only inside a catch block: the
// exception a handler threw ends its one request with a 500 OCI error and
// one log line, and the node keeps serving.
Reply internal_error_reply(const char* where) { return error_reply(internal_error(where)); }

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, RequestHandler& api, Metrics& metrics, const ServerLimits& limits, BlockingPool& workers)
      : stream_(std::move(socket)), send_timer_(stream_.get_executor()), api_(api), metrics_(metrics),
        limits_(limits), workers_(workers) {
    metrics_.connection_opened();
  }
  ~Session() { metrics_.connection_closed(); }

  void start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read_header(); });
  }

  // Answers `status` without reading the request, then closes lingering.
  void refuse(Status status) {
    net::dispatch(stream_.get_executor(), [self = shared_from_this(), status = std::move(status)] {
      self->started_ = Clock::now();
      self->reply_ = error_reply(status);
      self->reply_.header("Retry-After", "1");
      self->reply_.close = true;
      self->write_reply();
    });
  }

 private:
  void read_header() {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(limits_.header_bytes));
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());  // none is broken in Boost 1.74
    body_.clear();
    consumed_ = 0;
    stream_.expires_after(limits_.header_timeout);
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             [self = shared_from_this()](beast::error_code ec, size_t n) { self->on_header(ec, n); });
  }

  void on_header(beast::error_code ec, size_t n) {
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
    try {
      handling_ = api_.handle(head);
    } catch (...) {
      handling_ = Handling{};
      handling_.reply = internal_error_reply("a request handler");
    }
    if (handling_.prepare) return prepare();
    proceed();
  }

  // The handler asked for blocking work before it decides (e.g. evicting
  // cached blobs to make room): on the pool, then handled again here.
  void prepare() {
    auto work = std::move(handling_.prepare);
    const bool queued = workers_.post([self = shared_from_this(), work = std::move(work)] {
      try {
        work();
      } catch (...) {
        internal_error("a request's preparation");
      }
      net::post(self->stream_.get_executor(), [self] {
        try {
          self->handling_ = self->api_.handle_prepared(self->parser_->get().base());
        } catch (...) {
          self->handling_ = Handling{};
          self->handling_.reply = internal_error_reply("a request handler");
        }
        self->proceed();
      });
    });
    if (!queued) reject(Status{Errc::upstream_unavailable, "the node is shutting down"});
  }

  // Reads the body as the Handling says, or answers at once.
  void proceed() {
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

  void read_body() {
    chunk_.resize(kChunk);
    // A body of known length is read straight from the socket in large
    // reads; Beast's parser is kept for chunked bodies.
    if (auto length = parser_->content_length(); length && !parser_->chunked()) {
      raw_remaining_ = *length;
      size_t buffered = std::min<uint64_t>(buffer_.size(), raw_remaining_);
      if (buffered > 0) {
        net::buffer_copy(net::buffer(chunk_.data(), buffered), buffer_.data());
        buffer_.consume(buffered);
        if (!deliver(buffered)) return;
      }
      return read_raw();
    }
    auto& body = parser_->get().body();
    body.data = chunk_.data();
    body.size = chunk_.size();
    body.more = true;
    stream_.expires_after(limits_.stall_timeout);
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = shared_from_this()](beast::error_code ec, size_t) { self->on_body(ec); });
  }

  void read_raw() {
    if (raw_remaining_ == 0) return finish();
    stream_.expires_after(limits_.stall_timeout);
    size_t want = static_cast<size_t>(std::min<uint64_t>(chunk_.size(), raw_remaining_));
    stream_.async_read_some(net::buffer(chunk_.data(), want),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              if (ec) return self->shutdown();  // an unfinished upload is rolled back
                              if (self->deliver(n)) self->read_raw();
                            });
  }

  // Hands `got` body bytes in chunk_ to the handler; false when the request
  // has been answered (or the connection dropped) instead.
  bool deliver(size_t got) {
    metrics_.add_bytes_in(got);
    consumed_ += got;
    if (raw_remaining_ >= got) raw_remaining_ -= got;
    if (handling_.mode == BodyMode::upload && !handling_.reply) {
      Status s;
      try {
        s = handling_.appender->write(chunk_.data(), got);
      } catch (...) {
        return reject(internal_error_reply("an upload")), false;
      }
      if (!s) return reject(s), false;
    } else if (consumed_ > handling_.buffer_limit) {
      if (handling_.reply) {  // an answer is ready; stop reading what it ignores
        handling_.reply->close = true;
        return finish(), false;
      }
      return reject(Status{Errc::too_large, "request body exceeds the limit of " +
                                                std::to_string(handling_.buffer_limit) + " bytes"}),
             false;
    } else if (handling_.mode == BodyMode::buffer && !handling_.reply) {
      body_.append(chunk_.data(), got);
    }
    return true;
  }

  void on_body(beast::error_code ec) {
    if (ec == bhttp::error::need_buffer) ec = {};
    if (ec) return shutdown();  // client went away: an unfinished upload is rolled back
    if (!deliver(chunk_.size() - parser_->get().body().size)) return;
    if (parser_->is_done()) return finish();
    read_body();
  }

  void reject(const Status& status) { reject(error_reply(status)); }
  void reject(Reply reply) {
    handling_ = Handling{};
    reply_ = std::move(reply);
    reply_.close = true;
    write_reply();
  }

  void finish() {
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
  void run_on_pool(std::function<Reply()> work) {
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
    if (queued) return;
    reply_ = error_reply(Status{Errc::upstream_unavailable, "the node is shutting down"});
    reply_.close = true;
    write_reply();
  }

  void write_reply() {
    if (reply_.close) keep_alive_ = false;
    response_.emplace(static_cast<bhttp::status>(reply_.status), version_);
    auto& res = *response_;
    res.set("Docker-Distribution-API-Version", "registry/2.0");
    if (!reply_.content_type.empty()) res.set(bhttp::field::content_type, reply_.content_type);
    for (auto& [name, value] : reply_.headers) res.insert(name, value);
    uint64_t length = reply_.file ? reply_.file->length : reply_.head_length.value_or(reply_.body.size());
    if (reply_.status != 204) res.content_length(length);
    res.keep_alive(keep_alive_);
    serializer_.emplace(res);
    stream_.expires_after(limits_.stall_timeout);
    bhttp::async_write_header(stream_, *serializer_, [self = shared_from_this()](beast::error_code ec, size_t n) {
      self->on_header_written(ec, n);
    });
  }

  void on_header_written(beast::error_code ec, size_t n) {
    metrics_.add_bytes_out(n);
    if (ec) return shutdown();
    if (head_request_ || reply_.status == 204) return done();
    if (reply_.file) {
      stream_.expires_never();
      stream_.socket().native_non_blocking(true);
      return send_file();
    }
    if (reply_.body.empty()) return done();
    net::async_write(stream_, net::buffer(reply_.body), [self = shared_from_this()](beast::error_code e, size_t m) {
      self->metrics_.add_bytes_out(m);
      if (e) return self->shutdown();
      self->done();
    });
  }

  void send_file() {
    auto& file = *reply_.file;
    const int sock = stream_.socket().native_handle();
    uint64_t sent_now = 0;
    while (file.length > 0) {
      uint64_t slice = std::min<uint64_t>(file.length, kSendfileSlice);
      if (file.growing) {
        uint64_t readable = file.growing->readable();
        if (file.growing->failed()) return shutdown();  // never finish a blob that did not verify
        if (readable <= file.offset) {
          file.growing->when_readable(file.offset, [self = shared_from_this()] {
            net::post(self->stream_.get_executor(), [self] { self->send_file(); });
          });
          return;
        }
        slice = std::min<uint64_t>(slice, readable - file.offset);
      }
      off_t offset = static_cast<off_t>(file.offset);
      auto n = ::sendfile(sock, file.blob.fd.get(), &offset, slice);
      if (n > 0) {
        file.offset += static_cast<uint64_t>(n);
        file.length -= static_cast<uint64_t>(n);
        metrics_.add_bytes_out(static_cast<uint64_t>(n));
        sent_now += static_cast<uint64_t>(n);
        if (sent_now >= kYieldAfter && file.length > 0)
          return net::post(stream_.get_executor(), [self = shared_from_this()] { self->send_file(); });
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        send_timer_.expires_after(limits_.stall_timeout);
        send_timer_.async_wait([self = shared_from_this()](beast::error_code e) {
          if (!e) self->stream_.socket().close();  // no progress: drop the slow client
        });
        stream_.socket().async_wait(tcp::socket::wait_write, [self = shared_from_this()](beast::error_code e) {
          self->send_timer_.cancel();
          if (e) return self->shutdown();
          self->send_file();
        });
        return;
      }
      return shutdown();  // peer gone, or the file ended early
    }
    done();
  }

  void done() {
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
  void log_access(double seconds) {
    beast::error_code ec;
    auto peer = stream_.socket().remote_endpoint(ec);
    uint64_t length = reply_.file ? reply_.file->length : reply_.head_length.value_or(reply_.body.size());
    log_debug("access", (ec ? std::string("-") : peer.address().to_string()) + " \"" + access_line_ + "\" " +
                            std::to_string(reply_.status) + " " + std::to_string(head_request_ ? 0 : length) + " " +
                            std::to_string(static_cast<uint64_t>(seconds * 1000)) + "ms");
    access_line_.clear();
  }

  // After a complete reply on a connection that ends (often with request
  // body left unread, e.g. a 413 or a failed upload): half-close, then read
  // and discard for a moment before closing. Closing with unread input makes
  // the kernel send RST, which can destroy the reply before the client
  // has read it.
  void linger_close() {
    handling_ = Handling{};
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    send_timer_.expires_after(std::chrono::seconds(2));
    send_timer_.async_wait([self = shared_from_this()](beast::error_code) {
      beast::error_code e;
      self->stream_.socket().close(e);
    });
    drain(0);
  }

  void drain(size_t discarded) {
    if (discarded > (4u << 20)) return shutdown();
    chunk_.resize(64 << 10);
    stream_.socket().async_read_some(net::buffer(chunk_), [self = shared_from_this(), discarded](beast::error_code ec,
                                                                                                  size_t n) {
      if (ec) {  // the client closed its side (or the timer closed ours)
        self->send_timer_.cancel();
        return self->shutdown();
      }
      self->drain(discarded + n);
    });
  }

  void shutdown() {
    handling_ = Handling{};
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
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

}  // namespace

void start_session(tcp::socket socket, RequestHandler& api, Metrics& metrics, const ServerLimits& limits,
                   BlockingPool& workers) {
  std::make_shared<Session>(std::move(socket), api, metrics, limits, workers)->start();
}

void refuse_session(tcp::socket socket, RequestHandler& api, Metrics& metrics, const ServerLimits& limits,
                    BlockingPool& workers, Status why) {
  std::make_shared<Session>(std::move(socket), api, metrics, limits, workers)->refuse(std::move(why));
}

}  // namespace ep::http
