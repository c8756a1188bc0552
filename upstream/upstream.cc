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

Result<HttpResponse> Upstream::follow(HttpRequest request, BodySink* sink) {
  const std::string origin = base_.origin();
  for (int hop = 0; hop < 6; ++hop) {
    // Only stream a final answer, never a redirect's body.
    BodySink guarded;
    if (sink)
      guarded = {[&](const HttpResponse& head) { return (head.status < 300 || head.status >= 400) && sink->accept(head); },
                 sink->on_body};
    auto response = client_.send(request, sink ? &guarded : nullptr);
    if (!response) return response;
    bool redirect = response->status == 301 || response->status == 302 || response->status == 303 ||
                    response->status == 307 || response->status == 308;
    if (!redirect) return response;
    auto next = request.url.resolve(response->header("location"));
    if (!next) return next.status();
    if (next->origin() != origin) {
      auto& h = request.headers;
      h.erase(std::remove_if(h.begin(), h.end(), [](const auto& kv) { return kv.first == "Authorization"; }), h.end());
    }
    if (response->status == 303) request.method = "GET";
    request.url = *next;
  }
  return Status{Errc::upstream_unavailable, "too many redirects from " + describe()};
}

Status Upstream::authenticate(const HttpResponse& response, const std::string& scope) {
  auto challenge = parse_challenge(response.header("www-authenticate"));
  if (!challenge) return Status{Errc::unauthorized, describe() + " refused access without a challenge"};
  if (challenge->scheme == "basic") {
    if (!credentials_) return Status{Errc::unauthorized, describe() + " requires credentials; none configured"};
    std::lock_guard lock(mu_);
    use_basic_ = true;
    return Status::Ok();
  }
  if (challenge->scheme != "bearer") return Status{Errc::unauthorized, describe() + ": unsupported auth scheme"};
  auto realm = Url::parse(challenge->params["realm"]);
  if (!realm) return Status{Errc::unauthorized, describe() + ": bad token realm"};
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
  auto token_response = client_.send(token_request);
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

Result<HttpResponse> Upstream::get(const std::string& repo, const std::string& path, const std::string& method,
                                   std::vector<std::pair<std::string, std::string>> headers, BodySink* sink,
                                   std::chrono::milliseconds timeout) {
  if (!available()) return Status{Errc::upstream_unavailable, "upstream " + describe() + " is unavailable (backing off)"};
  const std::string remote = upstream_repo(repo);
  const std::string scope = "repository:" + remote + ":pull";
  HttpRequest request;
  request.method = method;
  request.url = base_;
  request.url.target = (base_.target == "/" ? "" : base_.target) + "/v2/" + remote + "/" + path;
  request.io_timeout = timeout;
  for (int attempt = 0; attempt < 2; ++attempt) {
    request.headers = headers;
    {
      std::lock_guard lock(mu_);
      auto token = tokens_.find(scope);
      if (token != tokens_.end() && token->second.expires > Clock::now())
        request.headers.emplace_back("Authorization", token->second.header);
      else if (use_basic_ && credentials_)
        request.headers.emplace_back("Authorization", credentials_->basic_header());
    }
    auto response = follow(request, sink);
    if (!response) {
      record(false);
      return Status{Errc::upstream_unavailable, "upstream " + describe() + ": " + response.status().message};
    }
    if (response->status >= 500) {
      record(false);
      return Status{Errc::upstream_unavailable,
                    "upstream " + describe() + " answered HTTP " + std::to_string(response->status)};
    }
    record(true);
    if (response->status != 401) return response;
    if (attempt == 1) break;
    if (auto s = authenticate(*response, scope); !s) return s;
  }
  return Status{Errc::unauthorized, "upstream " + describe() + " refused access to " + remote};
}

}  // namespace ep
