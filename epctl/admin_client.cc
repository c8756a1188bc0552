// AdminClient and admin URL parsing (see admin_client.h). Each request runs
// a private io_context; Boost.Asio is included after <utility>.
#include <utility>

#include "epctl/admin_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include "base/json_text.h"

namespace epctl {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

std::string AdminUrl::host_header() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return h + ":" + port;
}

std::optional<AdminUrl> parse_admin_url(const std::string& text, std::string* error) {
  auto bad = [&](const std::string& why) -> std::optional<AdminUrl> {
    *error = why;
    return std::nullopt;
  };
  AdminUrl url;
  url.text = text;
  std::string rest = text;
  bool has_scheme = false;
  auto sep = rest.find("://");
  if (sep != std::string::npos) {
    std::string scheme = rest.substr(0, sep);
    for (auto& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (scheme == "https") return bad("https is not supported (the admin API is plain HTTP)");
    if (scheme != "http") return bad("unsupported scheme '" + scheme + "'");
    rest = rest.substr(sep + 3);
    has_scheme = true;
  }
  if (rest.find_first_of("?#") != std::string::npos) return bad("no query or fragment allowed");
  auto slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  std::string path = slash == std::string::npos ? "" : rest.substr(slash);
  while (!path.empty() && path.back() == '/') path.pop_back();
  url.base_path = path;
  if (authority.empty()) return bad("no host");
  if (authority.find('@') != std::string::npos) return bad("credentials in the URL are not supported");
  std::string port;
  if (authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string::npos) return bad("unclosed '['");
    url.host = authority.substr(1, close - 1);
    std::string after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("junk after ']'");
      port = after.substr(1);
      if (port.empty()) return bad("empty port");
    }
  } else {
    auto colon = authority.find(':');
    if (colon != std::string::npos && authority.find(':', colon + 1) != std::string::npos)
      return bad("put IPv6 addresses in brackets, e.g. [::1]:5050");
    url.host = authority.substr(0, colon);
    if (colon != std::string::npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) return bad("empty port");
    }
  }
  if (url.host.empty()) return bad("no host");
  if (port.empty()) port = has_scheme ? "80" : "5050";
  if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(port) == 0 || std::stoul(port) > 65535)
    return bad("bad port '" + port + "'");
  url.port = std::to_string(std::stoul(port));
  return url;
}

std::string url_encode(const std::string& text) {
  static const char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string one_line(const std::string& text, size_t max_chars) {
  std::string out;
  for (unsigned char c : text) {
    bool space = c < 0x20 || c == 0x7f || c == ' ';
    if (space) {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out += static_cast<char>(c);
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  if (out.size() > max_chars) {
    size_t cut = max_chars;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;  // UTF-8
    out = out.substr(0, cut) + "...";
  }
  return out;
}

AdminClient::AdminClient(AdminUrl url, std::string token, std::chrono::milliseconds timeout)
    : url_(std::move(url)), token_(std::move(token)), timeout_(timeout) {}

Json AdminClient::call(const std::string& method, const std::string& path,
                                 const Json* body) {
  asio::io_context io;
  tcp::resolver resolver(io);
  beast::tcp_stream stream(io);

  http::request<http::string_body> req{http::string_to_verb(method), url_.base_path + path, 11};
  req.set(http::field::host, url_.host_header());
  req.set(http::field::user_agent, "epctl");
  req.set(http::field::accept, "application/json");
  req.set(http::field::connection, "close");
  if (!token_.empty()) req.set(http::field::authorization, "Bearer " + token_);
  if (body) {
    req.set(http::field::content_type, "application/json");
    req.body() = ep::json_text(*body);
  }
  req.prepare_payload();

  http::response_parser<http::string_body> parser;
  parser.body_limit(256u << 20);
  beast::flat_buffer buffer;
  beast::error_code failure;
  const char* stage = "resolving";
  bool done = false;

  // The deadline covers the whole exchange: connect, write and read.
  stream.expires_after(timeout_);
  resolver.async_resolve(url_.host, url_.port, [&](beast::error_code ec, tcp::resolver::results_type results) {
    if (ec) return void(failure = ec);
    stage = "connecting";
    stream.async_connect(results, [&](beast::error_code ec, const tcp::endpoint&) {
      if (ec) return void(failure = ec);
      stage = "sending the request";
      http::async_write(stream, req, [&](beast::error_code ec, size_t) {
        if (ec) return void(failure = ec);
        stage = "waiting for the answer";
        http::async_read(stream, buffer, parser, [&](beast::error_code ec, size_t) {
          failure = ec;
          done = !ec;
        });
      });
    });
  });
  io.run_for(timeout_ + std::chrono::milliseconds(250));

  auto seconds = std::to_string((timeout_.count() + 999) / 1000) + "s";
  if (!done && (!failure || failure == beast::error::timeout))
    throw AdminError("node at " + url_.text + " did not answer within " + seconds + " (" + stage + ")");
  if (failure) {
    if (std::string(stage) == "resolving")
      throw AdminError("cannot resolve '" + url_.host + "': " + failure.message());
    if (std::string(stage) == "connecting")
      throw AdminError("cannot reach node at " + url_.text + ": " + failure.message());
    throw AdminError("lost the connection to " + url_.text + " while " + stage + ": " + failure.message());
  }

  const auto& res = parser.get();
  int status = res.result_int();
  auto doc = res.body().empty() ? Json::object()
                                : Json::parse(res.body(), nullptr, false);
  if (status / 100 != 2) {
    std::string code = "HTTP " + std::to_string(status);
    if (doc.is_object() && doc.contains("error") && doc["error"].is_string())
      throw AdminError(one_line(doc["error"].get<std::string>()) + " (" + code + ")", status);
    std::string reason(res.reason());
    std::string message = code + (reason.empty() ? "" : " " + reason) + " (" + method + " " + path + ")";
    if (!res.body().empty()) message += ": " + one_line(res.body(), 200);
    throw AdminError(message, status);
  }
  if (doc.is_discarded())
    throw AdminError("node sent an answer that is not JSON (HTTP " + std::to_string(status) + ")", status);
  return doc;
}

}  // namespace epctl
