// HttpClient: the HTTP/1.1 client for upstream registries.
//
// Every request is a chain of Asio handlers (connect, TLS handshake, write,
// read) on a strand of its own, each step with a deadline: a dead uplink costs
// connect_timeout, a stalled one io_timeout; cancel_all() ends every request
// at once when the node stops. Requests run either on the node's I/O pool
// (async_send, once use_pools() was called: a request in flight costs no
// thread) or on the calling thread (run_here, for callers on a blocking
// pool). Name lookups block, so they run on the lookup pool (or the
// calling thread); a numeric host needs none. HTTPS uses the system CAs plus
// an optional CA file and verifies the host name. No redirects or auth here:
// Upstream (upstream.h) layers those on top. Thread-safe.
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

class BlockingPool;
class IoPool;
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
// on_body instead of buffering it (e.g. only for 200/206). For blocking
// callers (Upstream::get).
struct BodySink {
  std::function<bool(const HttpResponse& head)> accept;
  std::function<Status(const char* data, size_t size)> on_body;
};

// The same for async_send: on_body may consume its piece later, on any
// thread, and calls `next` once (with an error to end the request); the
// client reads nothing more until then, and `data` stays valid until then.
struct AsyncBodySink {
  std::function<bool(const HttpResponse& head)> accept;
  std::function<void(const char* data, size_t size, std::function<void(Status)> next)> on_body;
};

// `sink` for async_send inside run_here: each piece consumed at once (null: null).
std::shared_ptr<AsyncBodySink> blocking_sink(BodySink* sink);

struct HttpRequest {
  std::string method = "GET";
  Url url;
  std::vector<std::pair<std::string, std::string>> headers;
  size_t max_buffered_body = 4 << 20;  // bodies not streamed to a sink
  std::chrono::milliseconds io_timeout{0};  // overrides the client's when set
};

// Called once per request, on the request's strand (or the calling thread's
// private context). Errors: io_error naming the host for network and TLS
// failures and timeouts; upstream_unavailable once the client was cancelled.
using ResponseHandler = std::function<void(Result<HttpResponse>)>;

class HttpClient {
 public:
  struct Options {
    std::chrono::milliseconds connect_timeout{2000};
    std::chrono::milliseconds io_timeout{15000};
    std::string ca_file;  // extra trusted CAs (PEM), optional
  };
  explicit HttpClient(Options options);
  ~HttpClient();
  // Requests started by async_send run on `io`, their name lookups on
  // `lookups`. Both must outlive every request: cancel_all() before they stop.
  void use_pools(IoPool& io, BlockingPool& lookups);
  // Starts a request; `done` is called exactly once. Inside run_here() it
  // runs on that private context, else on the pools of use_pools() (without
  // them it fails at once).
  void async_send(HttpRequest request, std::shared_ptr<AsyncBodySink> sink, ResponseHandler done) const;
  // Runs `start`, and every request it starts with async_send (and those
  // their handlers start), on this thread with a private context; returns
  // once all of them ended. For callers on a blocking pool.
  void run_here(const std::function<void()>& start) const;
  const Options& options() const { return options_; }
  // Ends every request in flight at once (its socket is closed on its own
  // strand, so the request fails instead of waiting out its deadlines) and
  // refuses new ones: the node is stopping.
  void cancel_all() const;

  struct Shared;  // TLS context, pools and the requests in flight (http_client.cc)

 private:
  Options options_;
  std::shared_ptr<Shared> shared_;
};

}  // namespace ep
