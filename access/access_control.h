// AccessControl: decides who a registry client is and what it may do.
//
// Plain logic, no I/O threads of its own: the HTTP layer asks it about every
// request (`decide`) and the token endpoint (`issue_token`); the node's file
// watcher calls `reload` when the htpasswd or access file may have changed.
//
// Who: no Authorization header is anonymous; `Basic` is checked against the
// htpasswd file (bcrypt, so the first check of a credential runs off the I/O
// thread: `decide` answers verify_first, the caller runs `verify` on the
// blocking pool and asks again); `Bearer` is a token of this site
// (tokens.h). Basic credentials over plain HTTP are refused except from
// the node's own host: they would cross the network readable.
// What: the access rules (rules.h) give rights per repository; a token
// narrows them to what it grants. Without an htpasswd file nobody can log
// in, and anonymous clients on the node's own host may do everything (a
// demo, a CI job on the node); elsewhere they get the anonymous rules (pull
// by default).
//
// Thread safety: any thread may call any method. The policy (users, rules,
// fingerprint) is an immutable snapshot swapped whole by `reload`; the
// verified-credential cache is guarded by its own mutex, held only to look
// up or insert (never across a bcrypt check).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "access/htpasswd.h"
#include "access/rules.h"
#include "access/tokens.h"

namespace ep::access {

// The connection a request came on.
struct Caller {
  std::string address;  // client IP, for logs
  // On this node's own host: a loopback address, or the connection's own
  // local address (a client on the host connecting to the host's IP; TCP
  // cannot come from elsewhere with that source address).
  bool same_host = false;
  bool tls = false;
};

// Who a request is, once its credentials were checked.
struct Identity {
  std::string user;          // "" for anonymous
  bool local_anonymous = false;  // anonymous on the own host with no users configured: every right
  bool has_token = false;    // rights are narrowed to the token's grants
  std::map<std::string, uint8_t> token_access;
  bool token_catalog = false;
  std::string display() const { return user.empty() ? "anonymous" : user; }
};

struct AccessRequest {
  std::string_view authorization;  // the header's value
  std::string_view host;           // the Host header, for the token realm
  std::string repository;          // "" when the route has none
  uint8_t right = 0;               // what the request needs on `repository` (0: nothing)
  bool probe = false;              // GET /v2/: clients check their login here
};

struct Decision {
  enum class Kind { allow, verify_first, refuse } kind = Kind::allow;
  Identity identity;      // allow
  Status refusal;         // refuse: unauthorized (401) or denied (403)
  std::string challenge;  // refuse with 401: the WWW-Authenticate value
};

struct AccessSettings {
  std::string htpasswd_file;  // "" for none
  std::string access_file;    // "" for the built-in rules
  std::string node_name;
  uint64_t token_ttl_ms = 300000;
  TokenSigner::Key token_key{};
};

class AccessControl {
 public:
  explicit AccessControl(AccessSettings settings);

  // Reads both files; a file that does not parse keeps the policy in force
  // (the error says why). Call once before serving (an error is then fatal).
  // Returns whether the policy changed.
  Result<bool> reload();
  // Hash of the users and rules in force: equal on nodes with equal files.
  std::string fingerprint() const;
  bool has_users() const;
  // True when some file (htpasswd or access) is configured: reloads have work to do.
  bool has_files() const { return !settings_.htpasswd_file.empty() || !settings_.access_file.empty(); }

  Decision decide(const AccessRequest& request, const Caller& caller, uint64_t now_ms) const;
  // For verify_first: checks the Basic credential of `authorization` (bcrypt,
  // slow) and caches the answer; then decide() answers at once.
  void verify(std::string_view authorization) const;
  // Rights of an identity decide() allowed, on another repository (the catalog).
  uint8_t rights(const Identity& identity, std::string_view repository) const;

  // The token endpoint, for an identity decide() allowed: `scopes` as
  // clients send them ("repository:team/app:pull,push",
  // "registry:catalog:*"). A token with the requested rights the caller has
  // (possibly none), as the JSON body the distribution token spec describes.
  std::string issue_token(const Identity& identity, const std::vector<std::string>& scopes, uint64_t now_ms) const;

 private:
  struct Policy {
    std::shared_ptr<const Htpasswd> users;  // null: no htpasswd file
    AccessRules rules = AccessRules::defaults();
    std::string users_text, rules_text, fingerprint;
  };
  std::shared_ptr<const Policy> policy() const;
  // Who the request's Authorization header says the caller is (anonymous
  // without one); a refusal carries the challenge for this request.
  Decision authenticate(const AccessRequest& request, const Caller& caller, const Policy& policy,
                        uint64_t now_ms) const;
  // nullopt while a Basic credential is not verified yet.
  std::optional<bool> cached_check(const std::string& key) const;
  Decision refuse_unauthenticated(const AccessRequest& request, const Caller& caller, const Policy& policy,
                                  std::string message, const char* error = nullptr) const;
  uint8_t rights(const Identity& identity, std::string_view repository, const Policy& policy) const;

  AccessSettings settings_;
  TokenSigner signer_;
  std::shared_ptr<const Policy> policy_;  // std::atomic_load/store only
  mutable std::mutex cache_mu_;
  mutable std::map<std::string, std::pair<bool, uint64_t>> verified_;  // key -> (valid, expiry ms)
};

// Splits "Basic <base64>" into user and password; false when malformed.
bool parse_basic(std::string_view authorization, std::string& user, std::string& password);

}  // namespace ep::access
