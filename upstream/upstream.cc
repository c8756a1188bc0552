#include "upstream/upstream.h"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace ep {

using Clock = std::chrono::steady_clock;

Upstream::Upstream(std::string ns, Url base, HttpClient::Options options, std::optional<Credentials> credentials)
    : ns_(std::move(ns)), base_(std::move(base)), client_(std::move(options)), credentials_(std::move(credentials)) {}

bool Upstream::available() const {
  std::lock_guard lock(mu_);
  return Clock::now() >= down_until_;
}

void Upstream::record(bool healthy) {
  std::lock_guard lock(mu_);
  if (healthy) {
    failures_ = 0;
    down_until_ = {};
    return;
  }
  auto backoff = std::chrono::milliseconds(1000) * (1 << std::min(failures_, 5));
  down_until_ = Clock::now() + std::min<std::chrono::milliseconds>(backoff, std::chrono::seconds(30));
  ++failures_;
}

std::string Upstream::upstream_repo(const std::string& repo) const {
  if (ns_ == "docker.io" && repo.find('/') == std::string::npos) return "library/" + repo;
  return repo;
}

std::optional<std::string> Upstream::authorization(const std::string& scope) {
  std::lock_guard lock(mu_);
  auto token = tokens_.find(scope);
  if (token != tokens_.end() && token->second.expires > Clock::now()) return token->second.header;
  if (use_basic_ && credentials_) return credentials_->basic_header();
  return std::nullopt;
}

void Upstream::authenticate(const HttpResponse& response, const std::string& scope, std::function<void(Status)> done) {
  auto challenge = parse_challenge(response.header("www-authenticate"));
  if (!challenge) return done(Status{Errc::unauthorized, describe() + " refused access without a challenge"});
  if (challenge->scheme == "basic") {
    if (!credentials_) return done(Status{Errc::unauthorized, describe() + " requires credentials; none configured"});
    {
      std::lock_guard lock(mu_);
      use_basic_ = true;
    }
    return done(Status::Ok());
  }
  if (challenge->scheme != "bearer") return done(Status{Errc::unauthorized, describe() + ": unsupported auth scheme"});
  auto realm = Url::parse(challenge->params["realm"]);
  if (!realm) return done(Status{Errc::unauthorized, describe() + ": bad token realm"});
  std::string query;
  for (const char* key : {"service", "scope"}) {
    auto it = challenge->params.find(key);
    std::string value = it != challenge->params.end() ? it->second : (std::string(key) == "scope" ? scope : "");
    if (value.empty()) continue;
    std::string encoded;
    for (unsigned char c : value) {
      if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
        encoded.push_back(static_cast<char>(c));
      } else {
        char buf[4];
        std::snprintf(buf, sizeof buf, "%%%02X", c);
        encoded += buf;
      }
    }
    query += (query.empty() ? "?" : "&") + std::string(key) + "=" + encoded;
  }
  HttpRequest token_request;
  token_request.url = *realm;
  token_request.url.target += (realm->target.find('?') == std::string::npos ? query : "&" + query.substr(1));
  if (credentials_) token_request.headers.emplace_back("Authorization", credentials_->basic_header());
  client_.async_send(std::move(token_request), nullptr,
                     [this, scope, done = std::move(done)](Result<HttpResponse> r) { done(store_token(scope, r)); });
}

Status Upstream::store_token(const std::string& scope, const Result<HttpResponse>& token_response) {
  if (!token_response) return Status{Errc::upstream_unavailable, "token service of " + describe() + ": " + token_response.status().message};
  if (token_response->status == 401 || token_response->status == 403)
    return Status{Errc::unauthorized, "token service of " + describe() + " refused the credentials"};
  auto doc = nlohmann::json::parse(token_response->body, nullptr, false);
  // Fields of the wrong type count as absent: json::value() would throw.
  auto field = [&](const char* key) -> const nlohmann::json* {
    if (doc.is_discarded() || !doc.is_object()) return nullptr;
    auto it = doc.find(key);
    return it == doc.end() ? nullptr : &*it;
  };
  std::string token;
  for (const char* key : {"token", "access_token"})
    if (const auto* t = field(key); token.empty() && t && t->is_string()) token = t->get<std::string>();
  if (token_response->status != 200 || token.empty())
    return Status{Errc::unauthorized, "token service of " + describe() + " returned no token (HTTP " +
                                          std::to_string(token_response->status) + ")"};
  int64_t expires_in = 60;
  if (const auto* e = field("expires_in"); e && e->is_number_integer())
    expires_in = std::clamp<int64_t>(e->get<int64_t>(), 0, 86400);
  std::lock_guard lock(mu_);
  tokens_[scope] = Token{"Bearer " + token, Clock::now() + std::chrono::seconds(std::max<int64_t>(expires_in - 5, 1))};
  return Status::Ok();
}

// One async_get: an attempt, and a second one once a 401 taught how to
// authenticate; each follows redirects (at most 5), never carrying
// Authorization to another host. Runs on the strands of its requests, one
// step at a time.
struct UpstreamCall : std::enable_shared_from_this<UpstreamCall> {
  UpstreamCall(Upstream& upstream, HttpRequest base, std::vector<std::pair<std::string, std::string>> headers,
               std::shared_ptr<AsyncBodySink> sink, std::string scope, ResponseHandler done)
      : up(upstream), base(std::move(base)), headers(std::move(headers)), scope(std::move(scope)), done(std::move(done)) {
    if (sink)  // only a final answer is streamed, never a redirect's body
      this->sink = std::make_shared<AsyncBodySink>(AsyncBodySink{
          [sink](const HttpResponse& head) { return !is_redirect(head.status) && sink->accept(head); }, sink->on_body});
  }

  static bool is_redirect(unsigned status) {
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
  }

  void attempt() {
    request = base;
    request.headers = headers;
    if (auto authorization = up.authorization(scope)) request.headers.emplace_back("Authorization", *authorization);
    hops = 0;
    send();
  }

  void send() {
    up.client_.async_send(request, sink, [self = shared_from_this()](Result<HttpResponse> r) { self->answered(std::move(r)); });
  }

  void answered(Result<HttpResponse> response) {
    if (!response) return failed(response.status());
    if (is_redirect(response->status)) {
      if (auto s = follow(*response); !s) failed(s);
      return;
    }
    if (response->status >= 500) {
      up.record(false);
      return done(Status{Errc::upstream_unavailable,
                         "upstream " + up.describe() + " answered HTTP " + std::to_string(response->status)});
    }
    up.record(true);
    if (response->status != 401) return done(std::move(response));
    if (retried)
      return done(Status{Errc::unauthorized, "upstream " + up.describe() + " refused access to " + up.upstream_repo(repo)});
    retried = true;
    up.authenticate(*response, scope, [self = shared_from_this()](Status s) {
      if (!s) return self->done(s);
      self->attempt();
    });
  }

  void failed(const Status& why) {
    up.record(false);
    done(Status{Errc::upstream_unavailable, "upstream " + up.describe() + ": " + why.message});
  }

  // Sends the request on to the redirect's target; or why it cannot.
  Status follow(const HttpResponse& response) {
    if (++hops > 5) return Status{Errc::upstream_unavailable, "too many redirects from " + up.describe()};
    auto next = request.url.resolve(response.header("location"));
    if (!next) return next.status();
    if (next->origin() != up.base().origin()) {
      auto& h = request.headers;
      h.erase(std::remove_if(h.begin(), h.end(), [](const auto& kv) { return kv.first == "Authorization"; }), h.end());
    }
    if (response.status == 303) request.method = "GET";
    request.url = *next;
    send();
    return Status::Ok();
  }

  Upstream& up;
  HttpRequest base, request;
  std::vector<std::pair<std::string, std::string>> headers;
  std::shared_ptr<AsyncBodySink> sink;
  std::string scope, repo;
  ResponseHandler done;
  int hops = 0;
  bool retried = false;
};

void Upstream::async_get(const std::string& repo, const std::string& path, const std::string& method,
                         std::vector<std::pair<std::string, std::string>> headers, std::shared_ptr<AsyncBodySink> sink,
                         std::chrono::milliseconds timeout, ResponseHandler done) {
  if (!available()) return done(Status{Errc::upstream_unavailable, "upstream " + describe() + " is unavailable (backing off)"});
  const std::string remote = upstream_repo(repo);
  HttpRequest request;
  request.method = method;
  request.url = base_;
  request.url.target = (base_.target == "/" ? "" : base_.target) + "/v2/" + remote + "/" + path;
  request.io_timeout = timeout;
  auto call = std::make_shared<UpstreamCall>(*this, std::move(request), std::move(headers), std::move(sink),
                                             "repository:" + remote + ":pull", std::move(done));
  call->repo = repo;
  call->attempt();
}

Result<HttpResponse> Upstream::get(const std::string& repo, const std::string& path, const std::string& method,
                                   std::vector<std::pair<std::string, std::string>> headers, BodySink* sink,
                                   std::chrono::milliseconds timeout) {
  Result<HttpResponse> result = Status{Errc::io_error, "request did not run"};
  client_.run_here([&] {
    async_get(repo, path, method, std::move(headers), blocking_sink(sink), timeout,
              [&](Result<HttpResponse> r) { result = std::move(r); });
  });
  return result;
}

}  // namespace ep
