// HttpClient (see http_client.h). Boost.Asio is included after <utility>.
#include <utility>

#include "upstream/http_client.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <charconv>
#include <limits>
#include <mutex>

namespace ep {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;

Result<Url> Url::parse(const std::string& text) {
  Url url;
  auto scheme_end = text.find("://");
  if (scheme_end == std::string::npos) return Status{Errc::bad_request, "not a URL: " + text};
  url.scheme = text.substr(0, scheme_end);
  if (url.scheme != "http" && url.scheme != "https") return Status{Errc::bad_request, "unsupported URL scheme: " + text};
  auto rest = text.substr(scheme_end + 3);
  auto slash = rest.find('/');
  auto authority = rest.substr(0, slash);
  url.target = slash == std::string::npos ? "/" : rest.substr(slash);
  url.port = url.scheme == "https" ? 443 : 80;
  auto colon = authority.rfind(':');
  if (colon != std::string::npos && authority.find(']', colon) == std::string::npos) {
    unsigned port = 0;
    auto p = authority.substr(colon + 1);
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
    if (ec != std::errc() || ptr != p.data() + p.size() || port == 0 || port > 65535)
      return Status{Errc::bad_request, "bad port in URL: " + text};
    url.port = static_cast<unsigned short>(port);
    authority = authority.substr(0, colon);
  }
  if (authority.size() >= 2 && authority.front() == '[') authority = authority.substr(1, authority.size() - 2);
  if (authority.empty()) return Status{Errc::bad_request, "no host in URL: " + text};
  url.host = authority;
  return url;
}

std::string Url::origin() const {
  bool default_port = (scheme == "https" && port == 443) || (scheme == "http" && port == 80);
  return scheme + "://" + host + (default_port ? "" : ":" + std::to_string(port));
}

Result<Url> Url::resolve(const std::string& location) const {
  if (location.find("://") != std::string::npos) return parse(location);
  if (location.empty() || location.front() != '/') return Status{Errc::bad_request, "unsupported Location: " + location};
  Url url = *this;
  url.target = location;
  return url;
}

namespace {

// Runs one async operation on a private io_context with a deadline.
template <class Start, class Cancel>
beast::error_code run_with_deadline(net::io_context& ioc, std::chrono::milliseconds timeout, Start start,
                                    Cancel cancel, size_t* transferred = nullptr) {
  std::optional<beast::error_code> result;
  start([&](beast::error_code ec, size_t n = 0) {
    result = ec;
    if (transferred) *transferred = n;
  });
  ioc.restart();
  ioc.run_for(timeout);
  if (!result) {
    cancel();
    ioc.restart();
    ioc.run();
    return net::error::timed_out;
  }
  return *result;
}

template <class Stream>
Result<HttpResponse> exchange(net::io_context& ioc, Stream& stream, tcp::socket& socket, const HttpRequest& req,
                              BodySink* sink, std::chrono::milliseconds io_timeout) {
  auto fail = [&](const std::string& what, beast::error_code ec) {
    return Status{Errc::io_error, what + " " + req.url.origin() + ": " + ec.message()};
  };
  auto cancel = [&] {
    beast::error_code ignored;
    socket.cancel(ignored);
    socket.close(ignored);
  };
  bhttp::request<bhttp::empty_body> request{bhttp::string_to_verb(req.method), req.url.target, 11};
  bool default_port = (req.url.scheme == "https" && req.url.port == 443) || (req.url.scheme == "http" && req.url.port == 80);
  request.set(bhttp::field::host, default_port ? req.url.host : req.url.host + ":" + std::to_string(req.url.port));
  request.set(bhttp::field::user_agent, "edgepier/0.1");
  request.set(bhttp::field::connection, "close");
  for (const auto& [k, v] : req.headers) request.insert(k, v);
  auto ec = run_with_deadline(
      ioc, io_timeout, [&](auto handler) { bhttp::async_write(stream, request, handler); }, cancel);
  if (ec) return fail("cannot send request to", ec);

  // Beast reads at most what the buffer has room for (64 KiB a read at most):
  // left at its initial size, a 4 MiB body came in 8,000 reads of 512 bytes.
  beast::flat_buffer buffer;
  buffer.reserve(64 << 10);
  bhttp::response_parser<bhttp::buffer_body> parser;
  parser.header_limit(64 * 1024);
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  parser.skip(req.method == "HEAD");
  ec = run_with_deadline(
      ioc, io_timeout, [&](auto handler) { bhttp::async_read_header(stream, buffer, parser, handler); }, cancel);
  if (ec) return fail("no response from", ec);

  HttpResponse response;
  const auto& head = parser.get();
  response.status = head.result_int();
  for (const auto& field : head) {
    std::string name(field.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto& slot = response.headers[name];
    slot = slot.empty() ? std::string(field.value()) : slot + ", " + std::string(field.value());
  }
  if (auto len = parser.content_length()) response.content_length = *len;
  const bool streaming = sink && sink->accept(response);
  // A body the sink refused (a redirect's, or a whole blob where a range was
  // asked for) is not downloaded just to be dropped: the connection closes.
  if (sink && !streaming) return response;
  std::vector<char> chunk(1 << 20);
  while (!parser.is_done()) {
    auto& body = parser.get().body();
    body.data = chunk.data();
    body.size = chunk.size();
    // read_some: the deadline bounds a stall (no bytes), not how long a slow
    // but moving stream takes to fill the buffer.
    ec = run_with_deadline(
        ioc, io_timeout, [&](auto handler) { bhttp::async_read_some(stream, buffer, parser, handler); }, cancel);
    if (ec == bhttp::error::need_buffer) ec = {};
    if (ec) return fail("transfer interrupted from", ec);
    size_t got = chunk.size() - parser.get().body().size;
    if (streaming) {
      if (auto s = sink->on_body(chunk.data(), got); !s) return s;
    } else {
      if (response.body.size() + got > req.max_buffered_body)
        return Status{Errc::io_error, "response from " + req.url.origin() + " is too large"};
      response.body.append(chunk.data(), got);
    }
  }
  return response;
}

}  // namespace

struct HttpClient::InFlight {
  std::mutex mu;
  bool cancelled = false;
  uint64_t next_id = 0;
  std::map<uint64_t, std::function<void()>> cancels;
};

HttpClient::HttpClient(Options options) : options_(std::move(options)), in_flight_(std::make_shared<InFlight>()) {}

void HttpClient::cancel_all() const {
  std::lock_guard lock(in_flight_->mu);
  in_flight_->cancelled = true;
  for (auto& [id, cancel] : in_flight_->cancels) cancel();
}

Result<HttpResponse> HttpClient::send(const HttpRequest& req, BodySink* sink) const {
  net::io_context ioc;
  tcp::resolver resolver(ioc);
  tcp::socket socket(ioc);
  // Registered while it runs, so cancel_all() can close its socket (on this
  // request's own io_context, run by this thread).
  struct Registration {
    InFlight& in_flight;
    uint64_t id = 0;
    ~Registration() {
      std::lock_guard lock(in_flight.mu);
      in_flight.cancels.erase(id);
    }
  } registration{*in_flight_};
  {
    std::lock_guard lock(in_flight_->mu);
    if (in_flight_->cancelled) return Status{Errc::upstream_unavailable, "the node is stopping"};
    registration.id = ++in_flight_->next_id;
    in_flight_->cancels[registration.id] = [&ioc, &socket] {
      net::post(ioc, [&socket] {
        beast::error_code ignored;
        socket.close(ignored);
      });
    };
  }
  // Resolved here, on the caller's (pool) thread: Asio's async_resolve
  // would start a thread of its own for every request. A numeric host needs
  // no lookup; a name waits at most what resolv.conf allows.
  tcp::resolver::results_type endpoints;
  beast::error_code ec;
  net::ip::make_address(req.url.host, ec);
  const auto flags = ec ? tcp::resolver::flags() : tcp::resolver::numeric_host;
  ec = {};
  endpoints = resolver.resolve(req.url.host, std::to_string(req.url.port), flags, ec);
  if (ec) return Status{Errc::io_error, "cannot resolve " + req.url.host + ": " + ec.message()};
  ec = run_with_deadline(
      ioc, options_.connect_timeout,
      [&](auto handler) {
        net::async_connect(socket, endpoints, [handler](beast::error_code e, const tcp::endpoint&) { handler(e); });
      },
      [&] {
        beast::error_code ignored;
        socket.close(ignored);
      });
  if (ec) return Status{Errc::io_error, "cannot connect to " + req.url.origin() + ": " + ec.message()};
  socket.set_option(tcp::no_delay(true), ec);

  const auto io_timeout = req.io_timeout.count() ? req.io_timeout : options_.io_timeout;
  if (req.url.scheme == "http") return exchange(ioc, socket, socket, req, sink, io_timeout);

  ssl::context ctx(ssl::context::tls_client);
  ctx.set_default_verify_paths(ec);
  if (!options_.ca_file.empty()) {
    ctx.load_verify_file(options_.ca_file, ec);
    if (ec) return Status{Errc::io_error, "cannot load CA file " + options_.ca_file + ": " + ec.message()};
  }
  ctx.set_verify_mode(ssl::verify_peer);
  ssl::stream<tcp::socket&> tls(socket, ctx);
  SSL_set_tlsext_host_name(tls.native_handle(), req.url.host.c_str());
  tls.set_verify_callback(ssl::host_name_verification(req.url.host));
  ec = run_with_deadline(
      ioc, options_.connect_timeout,
      [&](auto handler) { tls.async_handshake(ssl::stream_base::client, [handler](beast::error_code e) { handler(e); }); },
      [&] {
        beast::error_code ignored;
        socket.close(ignored);
      });
  if (ec) return Status{Errc::io_error, "TLS handshake with " + req.url.origin() + " failed: " + ec.message()};
  return exchange(ioc, tls, socket, req, sink, io_timeout);
}

}  // namespace ep
