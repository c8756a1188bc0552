// AccessControl (see access_control.h): identities, rights and tokens.
#include "access/access_control.h"

#include <sodium.h>

#include <ctime>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/clock.h"
#include "base/file_io.h"
#include "base/json_text.h"

namespace ep::access {

namespace {

constexpr uint64_t kVerifiedForMs = 5 * 60 * 1000;  // a changed password is noticed within this
constexpr size_t kCacheEntries = 4096;

Result<std::string> read_file(const std::string& path) {
  auto text = read_whole_file(path);
  if (!text) return Status{Errc::config_invalid, "cannot read " + path};
  return std::move(*text);
}

std::string hex_hash(std::string_view a, std::string_view b, size_t bytes) {
  crypto_generichash_state state;
  crypto_generichash_init(&state, nullptr, 0, bytes);
  for (std::string_view part : {a, std::string_view("\0", 1), b})
    crypto_generichash_update(&state, reinterpret_cast<const unsigned char*>(part.data()), part.size());
  unsigned char out[32];
  crypto_generichash_final(&state, out, bytes);
  std::string hex(bytes * 2 + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), out, bytes);
  hex.pop_back();
  return hex;
}

std::string iso8601_utc(uint64_t ms) {
  std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

// The verified-credential cache's key: no password is kept in memory, and a
// changed hash (an edited htpasswd file) makes a new key.
std::string credential_key(const std::string& user, const std::string& password, const std::string& hash) {
  return hex_hash(user + '\0' + password, hash, 32);
}

bool starts_with(std::string_view text, std::string_view prefix) { return text.substr(0, prefix.size()) == prefix; }

// "repository:team/app:pull,push" -> ("team/app", rights); "*" is every right.
bool parse_scope(const std::string& scope, std::string& repository, uint8_t& rights) {
  if (!starts_with(scope, "repository:")) return false;
  auto last = scope.rfind(':');
  if (last <= 11) return false;
  repository = scope.substr(11, last - 11);
  rights = 0;
  std::istringstream actions(scope.substr(last + 1));
  for (std::string a; std::getline(actions, a, ',');)
    rights |= a == "pull" ? kPull : a == "push" ? kPush : a == "delete" ? kDelete : a == "*" ? kAll : 0;
  return true;
}

}  // namespace

bool parse_basic(std::string_view authorization, std::string& user, std::string& password) {
  if (!starts_with(authorization, "Basic ") && !starts_with(authorization, "basic ")) return false;
  auto encoded = authorization.substr(6);
  while (!encoded.empty() && encoded.front() == ' ') encoded.remove_prefix(1);
  std::string decoded(encoded.size(), '\0');
  size_t size = 0;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(decoded.data()), decoded.size(), encoded.data(),
                        encoded.size(), " ", &size, nullptr, sodium_base64_VARIANT_ORIGINAL) != 0)
    return false;
  decoded.resize(size);
  auto colon = decoded.find(':');
  if (colon == std::string::npos) return false;
  user = decoded.substr(0, colon);
  password = decoded.substr(colon + 1);
  return true;
}

AccessControl::AccessControl(AccessSettings settings)
    : settings_(std::move(settings)), signer_(settings_.token_key), policy_(std::make_shared<Policy>()) {}

std::shared_ptr<const AccessControl::Policy> AccessControl::policy() const { return std::atomic_load(&policy_); }

std::string AccessControl::fingerprint() const { return policy()->fingerprint; }

bool AccessControl::has_users() const { return policy()->users != nullptr; }

Result<bool> AccessControl::reload() {
  auto current = policy();
  auto next = std::make_shared<Policy>();
  if (!settings_.htpasswd_file.empty()) {
    auto text = read_file(settings_.htpasswd_file);
    if (!text) return text.status();
    next->users_text = std::move(*text);
  }
  if (!settings_.access_file.empty()) {
    auto text = read_file(settings_.access_file);
    if (!text) return text.status();
    next->rules_text = std::move(*text);
  }
  next->fingerprint = hex_hash(next->users_text, next->rules_text, 8);
  if (!current->fingerprint.empty() && next->fingerprint == current->fingerprint) return false;
  if (!settings_.htpasswd_file.empty()) {
    auto users = Htpasswd::parse(next->users_text, settings_.htpasswd_file);
    if (!users) return users.status();
    next->users = std::make_shared<const Htpasswd>(std::move(*users));
  }
  if (!settings_.access_file.empty()) {
    auto rules = AccessRules::parse(next->rules_text, settings_.access_file);
    if (!rules) return rules.status();
    next->rules = std::move(*rules);
  }
  std::atomic_store(&policy_, std::shared_ptr<const Policy>(std::move(next)));
  return true;
}

std::optional<bool> AccessControl::cached_check(const std::string& key) const {
  std::lock_guard<std::mutex> lock(cache_mu_);
  auto it = verified_.find(key);
  if (it == verified_.end() || it->second.second <= steady_clock_ms()) return std::nullopt;
  return it->second.first;
}

void AccessControl::verify(std::string_view authorization) const {
  std::string user, password;
  auto current = policy();
  if (!current->users || !parse_basic(authorization, user, password)) return;
  const std::string hash = current->users->hash_of(user);
  const std::string key = credential_key(user, password, hash);
  if (cached_check(key)) return;
  const bool valid = !hash.empty() && bcrypt_matches(password, hash);
  std::lock_guard<std::mutex> lock(cache_mu_);
  if (verified_.size() >= kCacheEntries) verified_.clear();  // bounded; the next checks pay bcrypt again
  verified_[key] = {valid, steady_clock_ms() + kVerifiedForMs};
}

Decision AccessControl::authenticate(const AccessRequest& request, const Caller& caller, const Policy& policy,
                                     uint64_t now_ms) const {
  Decision d;
  const std::string_view authorization = request.authorization;
  if (authorization.empty()) {
    d.identity.local_anonymous = caller.same_host && !policy.users;
    return d;
  }
  std::string user, password;
  if (parse_basic(authorization, user, password)) {
    if (!caller.tls && !caller.same_host)
      return refuse_unauthenticated(request, caller, policy,
                                    "Basic credentials over plain HTTP are refused; use HTTPS (tls-cert-file) "
                                    "or a token");
    if (!policy.users)
      return refuse_unauthenticated(request, caller, policy,
                                    "this node has no users: set htpasswd-file to enable logins");
    auto valid = cached_check(credential_key(user, password, policy.users->hash_of(user)));
    if (!valid) return Decision{Decision::Kind::verify_first, {}, {}, {}};
    if (!*valid) return refuse_unauthenticated(request, caller, policy, "invalid username or password");
    d.identity.user = user;
    return d;
  }
  if (starts_with(authorization, "Bearer ") || starts_with(authorization, "bearer ")) {
    auto claims = signer_.verify(std::string(authorization.substr(7)), now_ms);
    if (!claims) return refuse_unauthenticated(request, caller, policy, claims.status().message);
    d.identity.user = claims->user;
    d.identity.has_token = true;
    d.identity.token_access = std::move(claims->access);
    d.identity.token_catalog = claims->catalog;
    return d;
  }
  return refuse_unauthenticated(request, caller, policy, "unsupported Authorization scheme (use Basic or Bearer)");
}

uint8_t AccessControl::rights(const Identity& identity, std::string_view repository) const {
  return rights(identity, repository, *policy());
}

uint8_t AccessControl::rights(const Identity& identity, std::string_view repository, const Policy& policy) const {
  uint8_t granted =
      identity.local_anonymous && !policy.users ? uint8_t{kAll} : policy.rules.rights(identity.user, repository);
  if (identity.has_token) {
    auto it = identity.token_access.find(std::string(repository));
    granted &= it == identity.token_access.end() ? 0 : it->second;
  }
  return granted;
}

Decision AccessControl::decide(const AccessRequest& request, const Caller& caller, uint64_t now_ms) const {
  auto current = policy();
  Decision d = authenticate(request, caller, *current, now_ms);
  if (d.kind != Decision::Kind::allow) return d;
  const Identity& who = d.identity;
  if (request.probe && current->users && who.user.empty() && !who.has_token)
    return refuse_unauthenticated(request, caller, *current, "authentication required");
  if (request.right == 0 || (rights(who, request.repository, *current) & request.right)) return d;
  const std::string action = rights_text(request.right);
  if (who.user.empty()) {
    if (!current->users && request.right != kPull)
      return refuse_unauthenticated(request, caller, *current,
                                    "anonymous " + action + " is accepted only from this node's own host; to " +
                                        action + " from " + caller.address +
                                        ", set htpasswd-file (users) and access-file (their rights) on every node");
    return refuse_unauthenticated(request, caller, *current,
                                  "authentication required to " + action + " " + request.repository);
  }
  if (who.has_token && (current->rules.rights(who.user, request.repository) & request.right))
    return refuse_unauthenticated(request, caller, *current,
                                  "the token does not grant " + action + " on " + request.repository,
                                  "insufficient_scope");
  Decision refused;
  refused.kind = Decision::Kind::refuse;
  refused.refusal = Status{Errc::denied, who.display() + " may not " + action + " " + request.repository};
  return refused;
}

Decision AccessControl::refuse_unauthenticated(const AccessRequest& request, const Caller& caller,
                                               const Policy& policy, std::string message, const char* error) const {
  Decision d;
  d.kind = Decision::Kind::refuse;
  d.refusal = Status{Errc::unauthorized, std::move(message)};
  if (!policy.users) {  // nobody can log in: a login prompt would not help
    d.challenge = "Basic realm=\"edgepier: " + std::string(request.right == kPull ? "pulls" : "writes") +
                  " need htpasswd-file\"";
    return d;
  }
  std::string realm = std::string(caller.tls ? "https://" : "http://") + std::string(request.host) + "/v2/token";
  d.challenge = "Bearer realm=\"" + realm + "\",service=\"edgepier\"";
  if (!request.repository.empty() && request.right != 0) {
    uint8_t wanted = request.right == kPush ? kPull | kPush : request.right;
    d.challenge += ",scope=\"repository:" + request.repository + ":" + rights_text(wanted) + "\"";
  }
  if (error) d.challenge += ",error=\"" + std::string(error) + "\"";
  return d;
}

std::string AccessControl::issue_token(const Identity& identity, const std::vector<std::string>& scopes,
                                       uint64_t now_ms) const {
  auto current = policy();
  TokenClaims claims;
  claims.user = identity.user;
  claims.issuer = settings_.node_name;
  claims.issued_ms = now_ms;
  claims.expires_ms = now_ms + settings_.token_ttl_ms;
  Identity unnarrowed = identity;
  unnarrowed.has_token = false;  // a token is exchanged for one with what the user may do
  // The own host's trust stays there: a token carries only what the rules grant.
  unnarrowed.local_anonymous = false;
  for (const auto& scope : scopes) {
    if (scope == "registry:catalog:*") {
      claims.catalog = current->rules.may_somewhere(identity.user, kPull);
      continue;
    }
    std::string repository;
    uint8_t wanted = 0;
    if (!parse_scope(scope, repository, wanted)) continue;
    if (uint8_t granted = wanted & rights(unnarrowed, repository, *current)) claims.access[repository] |= granted;
  }
  nlohmann::json body = {{"token", signer_.issue(claims)},
                         {"expires_in", settings_.token_ttl_ms / 1000},
                         {"issued_at", iso8601_utc(now_ms)}};
  body["access_token"] = body["token"];
  return json_text(body);
}

}  // namespace ep::access
