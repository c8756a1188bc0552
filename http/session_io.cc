// Session (session_impl.h): the bytes of a connection: request bodies read
// straight from the socket (Beast's parser only for chunked ones) and
// delivered to the handler, replies written with sendfile(2) for blobs, and
// the lingering close that lets a client still sending read its reply.
#include "http/session_impl.h"

#include <sys/sendfile.h>

#include <cerrno>
#include <limits>

#include "base/file_io.h"
#include "http/oci_errors.h"

namespace ep::http {

constexpr size_t kChunk = 1 << 20;
constexpr size_t kSendfileSlice = 4 << 20;
constexpr size_t kTlsSlice = 256 << 10;
constexpr uint64_t kYieldAfter = 64 << 20;  // let other connections run on this thread

void Session::read_body() {
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
  stream_.tcp().expires_after(limits_.stall_timeout);
  bhttp::async_read(stream_, buffer_, *parser_,
                    [self = shared_from_this()](beast::error_code ec, size_t) { self->on_body(ec); });
}

void Session::read_raw() {
  if (raw_remaining_ == 0) return finish();
  stream_.tcp().expires_after(limits_.stall_timeout);
  size_t want = static_cast<size_t>(std::min<uint64_t>(chunk_.size(), raw_remaining_));
  stream_.async_read_some(net::buffer(chunk_.data(), want),
                          [self = shared_from_this()](beast::error_code ec, size_t n) {
                            if (ec) return self->shutdown();  // an unfinished upload is rolled back
                            if (self->deliver(n)) self->read_raw();
                          });
}

// Hands `got` body bytes in chunk_ to the handler; false when the request
// has been answered (or the connection dropped) instead.
bool Session::deliver(size_t got) {
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

void Session::on_body(beast::error_code ec) {
  if (ec == bhttp::error::need_buffer) ec = {};
  if (ec) return shutdown();  // client went away: an unfinished upload is rolled back
  if (!deliver(chunk_.size() - parser_->get().body().size)) return;
  if (parser_->is_done()) return finish();
  read_body();
}

void Session::write_reply() {
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
  stream_.tcp().expires_after(limits_.stall_timeout);
  bhttp::async_write_header(stream_, *serializer_, [self = shared_from_this()](beast::error_code ec, size_t n) {
    self->on_header_written(ec, n);
  });
}

void Session::on_header_written(beast::error_code ec, size_t n) {
  metrics_.add_bytes_out(n);
  if (ec) return shutdown();
  if (head_request_ || reply_.status == 204) return done();
  if (reply_.file && stream_.tls()) return send_file_tls();
  if (reply_.file) {
    stream_.tcp().expires_never();
    stream_.tcp().socket().native_non_blocking(true);
    return send_file();
  }
  if (reply_.body.empty()) return done();
  net::async_write(stream_, net::buffer(reply_.body), [self = shared_from_this()](beast::error_code e, size_t m) {
    self->metrics_.add_bytes_out(m);
    if (e) return self->shutdown();
    self->done();
  });
}

void Session::send_file() {
  auto& file = *reply_.file;
  const int sock = stream_.tcp().socket().native_handle();
  uint64_t sent_now = 0;
  while (file.length > 0) {
    uint64_t slice = std::min<uint64_t>(file.length, kSendfileSlice);
    if (!readable_slice(slice, &Session::send_file)) return;
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
        if (!e) self->stream_.tcp().socket().close();  // no progress: drop the slow client
      });
      stream_.tcp().socket().async_wait(tcp::socket::wait_write, [self = shared_from_this()](beast::error_code e) {
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

bool Session::readable_slice(uint64_t& slice, void (Session::*resume)()) {
  auto& file = *reply_.file;
  if (!file.growing) return true;
  uint64_t readable = file.growing->readable();
  if (file.growing->failed()) return shutdown(), false;  // never finish a blob that did not verify
  if (readable <= file.offset) {
    file.growing->when_readable(file.offset, [self = shared_from_this(), resume] {
      net::post(self->stream_.get_executor(), [self, resume] { ((*self).*resume)(); });
    });
    return false;
  }
  slice = std::min<uint64_t>(slice, readable - file.offset);
  return true;
}

void Session::send_file_tls() {
  auto& file = *reply_.file;
  if (file.length == 0) return done();
  uint64_t slice = std::min<uint64_t>(file.length, kTlsSlice);
  if (!readable_slice(slice, &Session::send_file_tls)) return;
  chunk_.resize(slice);
  if (!pread_exact(file.blob.fd.get(), chunk_.data(), slice, file.offset, "a blob")) return shutdown();
  stream_.tcp().expires_after(limits_.stall_timeout);
  net::async_write(stream_, net::buffer(chunk_.data(), slice), [self = shared_from_this()](beast::error_code ec, size_t n) {
    if (ec) return self->shutdown();
    auto& sent = *self->reply_.file;
    sent.offset += n;
    sent.length -= n;
    self->metrics_.add_bytes_out(n);
    self->send_file_tls();
  });
}

// After a complete reply on a connection that ends (often with request
// body left unread, e.g. a 413 or a failed upload): half-close, then read
// and discard for a moment before closing. Closing with unread input makes
// the kernel send RST, which can destroy the reply before the client
// has read it.
void Session::linger_close() {
  handling_ = Handling{};
  beast::error_code ignored;
  stream_.tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
  send_timer_.expires_after(std::chrono::seconds(2));
  send_timer_.async_wait([self = shared_from_this()](beast::error_code) {
    beast::error_code e;
    self->stream_.tcp().socket().close(e);
  });
  drain(0);
}

void Session::drain(size_t discarded) {
  if (discarded > (4u << 20)) return shutdown();
  chunk_.resize(64 << 10);
  stream_.tcp().socket().async_read_some(net::buffer(chunk_), [self = shared_from_this(), discarded](beast::error_code ec,
                                                                                                size_t n) {
    if (ec) {  // the client closed its side (or the timer closed ours)
      self->send_timer_.cancel();
      return self->shutdown();
    }
    self->drain(discarded + n);
  });
}

void Session::shutdown() {
  handling_ = Handling{};
  beast::error_code ignored;
  stream_.tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
  stream_.tcp().socket().close(ignored);
}

}  // namespace ep::http
