// Upstream: one configured upstream registry (a `?ns=` namespace).
//
// Adds to HttpClient what registries need: Docker Hub's library/ convention,
// the 401 challenge (Bearer token fetched anonymously or with credentials,
// cached until it expires; or Basic), one retry after a 401, redirects (at
// most 5, never carrying Authorization to another host), and a health state:
// after a network failure or a 5xx the upstream is "down" for a backoff
// (1 s doubling to 30 s) during which requests fail at once instead of
// waiting for timeouts. Thread-safe. async_get runs on the node's I/O pool
// (use_pools) and costs no thread while it waits; get() is the same request
// run on the calling thread, for callers on a blocking pool.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "upstream/auth.h"
#include "upstream/http_client.h"

namespace ep {

class Upstream {
 public:
  Upstream(std::string ns, Url base, HttpClient::Options options, std::optional<Credentials> credentials);

  const std::string& ns() const { return ns_; }
  const Url& base() const { return base_; }
  // False while backing off after a failure.
  bool available() const;
  // Requests of async_get run on `io`; name lookups on `lookups`.
  void use_pools(IoPool& io, BlockingPool& lookups) { client_.use_pools(io, lookups); }
  // Ends every request to this upstream in flight and refuses new ones (the
  // node is stopping).
  void cancel_requests() const { client_.cancel_all(); }
  std::string describe() const { return ns_ + " (" + base_.origin() + ")"; }

  // `path` is relative to /v2/<repository>/, e.g. "manifests/latest".
  // Network failures and 5xx come back as upstream_unavailable; a 401 that
  // survives the retry as unauthorized; other statuses as the response.
  // `timeout` bounds each read (0: the client's default, for long bodies).
  Result<HttpResponse> get(const std::string& repo, const std::string& path, const std::string& method,
                           std::vector<std::pair<std::string, std::string>> headers, BodySink* sink = nullptr,
                           std::chrono::milliseconds timeout = std::chrono::milliseconds(0));
  // The same, without holding a thread: `done` is called once, on an I/O
  // thread (or inline when refused at once).
  void async_get(const std::string& repo, const std::string& path, const std::string& method,
                 std::vector<std::pair<std::string, std::string>> headers, std::shared_ptr<AsyncBodySink> sink,
                 std::chrono::milliseconds timeout, ResponseHandler done);

  // The repository name as the upstream knows it (library/ for Docker Hub).
  std::string upstream_repo(const std::string& repo) const;

  // Whether blob GETs honour Range, as last seen (a 206 or a 200 answer to
  // a Range request); nullopt until one was seen.
  std::optional<bool> serves_ranges() const {
    int v = ranges_;
    return v == 0 ? std::nullopt : std::optional<bool>(v > 0);
  }
  void saw_ranges(bool served) { ranges_ = served ? 1 : -1; }

 private:
  friend struct UpstreamCall;  // one async_get: redirects, the auth retry (upstream.cc)
  // The Authorization header for `scope` now, if any.
  std::optional<std::string> authorization(const std::string& scope);
  // Learns how to authenticate from a 401 (fetching a Bearer token with
  // `client_`), then calls `done`.
  void authenticate(const HttpResponse& challenge_response, const std::string& scope, std::function<void(Status)> done);
  Status store_token(const std::string& scope, const Result<HttpResponse>& token_response);
  void record(bool healthy);

  std::string ns_;
  Url base_;
  HttpClient client_;
  std::optional<Credentials> credentials_;

  mutable std::mutex mu_;
  struct Token {
    std::string header;  // full Authorization value
    std::chrono::steady_clock::time_point expires;
  };
  std::map<std::string, Token> tokens_;  // by scope
  bool use_basic_ = false;
  int failures_ = 0;
  std::chrono::steady_clock::time_point down_until_{};
  std::atomic<int> ranges_{0};  // 1 served, -1 ignored, 0 not seen yet
};

}  // namespace ep
