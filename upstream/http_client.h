// HttpClient: a blocking HTTP/1.1 client for upstream registries.
//
// Used only from mirror worker threads, never from the HTTP server's
// threads. Each request runs its own private io_context, so every step
// (connect, TLS handshake, each read and write) has a deadline: a dead
// uplink costs connect_timeout, a stalled one io_timeout; cancel_all() ends
// them all at once when the node stops. HTTPS uses
// the system CAs plus an optional CA file and verifies the host name.
// No redirects or auth here: Upstream (upstream.h) layers those on top.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"

namespace ep {

struct Url {
  std::string scheme;  // "http" or "https"
  std::string host;
  unsigned short port = 0;
  std::string target;  // path and query, at least "/"
  static Result<Url> parse(const std::string& text);
  std::string origin() const;  // scheme://host[:port]
  // Resolves a Location header (absolute, or a path) against this URL.
  Result<Url> resolve(const std::string& location) const;
};

struct HttpResponse {
  unsigned status = 0;
  std::map<std::string, std::string> headers;  // lowercase names; repeated headers joined by ", "
  std::string body;                            // when no sink consumed it
  std::optional<uint64_t> content_length;
  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// Receives the response head once; returns true to stream the body into
// on_body instead of buffering it (e.g. only for 200/206).
struct BodySink {
  std::function<bool(const HttpResponse& head)> accept;
  std::function<Status(const char* data, size_t size)> on_body;
};

struct HttpRequest {
  std::string method = "GET";
  Url url;
  std::vector<std::pair<std::string, std::string>> headers;
  size_t max_buffered_body = 4 << 20;  // bodies not streamed to a sink
  std::chrono::milliseconds io_timeout{0};  // overrides the client's when set
};

class HttpClient {
 public:
  struct Options {
    std::chrono::milliseconds connect_timeout{2000};
    std::chrono::milliseconds io_timeout{15000};
    std::string ca_file;  // extra trusted CAs (PEM), optional
  };
  explicit HttpClient(Options options);
  // Errors: io_error naming the host for network/TLS failures and timeouts.
  Result<HttpResponse> send(const HttpRequest& request, BodySink* sink = nullptr) const;
  const Options& options() const { return options_; }
  // Ends every request in flight at once (its socket is closed on its own
  // thread, so the request fails instead of waiting out its deadlines) and
  // refuses new ones: the node is stopping. Thread-safe.
  void cancel_all() const;

 private:
  struct InFlight;  // requests running now, by id (http_client.cc)
  Options options_;
  std::shared_ptr<InFlight> in_flight_;
};

}  // namespace ep
