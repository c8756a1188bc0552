// Registry access control (access/): users, rules, tokens and the decisions
// a node makes on them, as a client would meet them.
#include <sodium.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <catch2/catch.hpp>

#include "access/access_control.h"
#include "base/clock.h"

using namespace ep;
using namespace ep::access;
namespace fs = std::filesystem;

namespace {

// bcrypt (cost 4) of "secret" and of "other".
const char* kSecretHash = "$2b$04$18cQFEgRnsxP3i5KgfUqZuuR/eglZmSjD0shaDXmqBvsrOLTWvofm";
const char* kOtherHash = "$2b$04$WJttddkNxHvXPyDwYdB.uub2QqbnRiC2UvOo0mEmP8yjrBnKPYWO6";

std::string basic(const std::string& user, const std::string& password) {
  std::string raw = user + ":" + password;
  std::string out(sodium_base64_encoded_len(raw.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(raw.data()), raw.size(),
                    sodium_base64_VARIANT_ORIGINAL);
  out.pop_back();
  return "Basic " + out;
}

struct Files {
  fs::path dir;
  Files() {
    std::random_device rd;
    dir = fs::temp_directory_path() / ("ep-unit-access-" + std::to_string(rd()));
    fs::create_directories(dir);
  }
  ~Files() { fs::remove_all(dir); }
  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  }
};

const Caller kLoopback{"127.0.0.1", true, false};
const Caller kRemote{"10.0.0.7", false, false};
const Caller kRemoteTls{"10.0.0.7", false, true};

AccessRequest want(uint8_t right, const std::string& repository, std::string_view authorization = "") {
  AccessRequest r;
  r.authorization = authorization;
  r.host = "node1:5000";
  r.repository = repository;
  r.right = right;
  return r;
}

// A node with users alice (secret, group devs) and bob (other), and rules.
struct Node {
  Files files;
  std::unique_ptr<AccessControl> access;
  explicit Node(const std::string& rules = "group devs: alice\n@devs all team/*\nbob pull *\n",
                bool with_users = true) {
    AccessSettings s;
    if (with_users)
      s.htpasswd_file = files.write("htpasswd", std::string("alice:") + kSecretHash + "\nbob:" + kOtherHash + "\n");
    if (!rules.empty()) s.access_file = files.write("access", rules);
    s.node_name = "n1";
    s.token_key.fill(7);
    access = std::make_unique<AccessControl>(s);
    REQUIRE(access->reload());
  }
  // decide(), checking a first Basic credential off the "I/O thread" as the server does.
  Decision decide(const AccessRequest& r, const Caller& c = kLoopback) {
    auto d = access->decide(r, c, 0);
    if (d.kind == Decision::Kind::verify_first) {
      access->verify(r.authorization);
      d = access->decide(r, c, 0);
      REQUIRE(d.kind != Decision::Kind::verify_first);
    }
    return d;
  }
  std::string token(const std::string& authorization, const std::vector<std::string>& scopes) {
    auto who = decide(want(0, "", authorization));
    REQUIRE(who.kind == Decision::Kind::allow);
    auto body = access->issue_token(who.identity, scopes, ep::wall_clock_ms());
    auto at = body.find("\"token\":\"");
    REQUIRE(at != std::string::npos);
    return body.substr(at + 9, body.find('"', at + 9) - at - 9);
  }
};

}  // namespace

TEST_CASE("htpasswd: bcrypt entries verify, anything weaker is refused with its line") {
  auto users = Htpasswd::parse(std::string("# users\nalice:") + kSecretHash + "\r\n\nbob:" + kOtherHash + "\n", "h");
  REQUIRE(users);
  CHECK(users->size() == 2);
  CHECK(users->verify("alice", "secret"));
  CHECK_FALSE(users->verify("alice", "other"));
  CHECK(users->verify("bob", "other"));
  CHECK_FALSE(users->verify("carol", "secret"));
  auto md5 = Htpasswd::parse("carol:$apr1$abc$0123456789abcdefghijkl\n", "users.htpasswd");
  REQUIRE_FALSE(md5);
  CHECK(md5.status().message.find("users.htpasswd line 1") != std::string::npos);
  CHECK(md5.status().message.find("htpasswd -B") != std::string::npos);
  CHECK_FALSE(Htpasswd::parse(std::string("a:") + kSecretHash + "\na:" + kOtherHash, "h"));
  CHECK_FALSE(Htpasswd::parse(std::string("anonymous:") + kSecretHash, "h"));
  CHECK_FALSE(Htpasswd::parse("no colon here", "h"));
}

TEST_CASE("rules: patterns, groups and the union of what matches") {
  CHECK(glob_matches("team/*", "team/app"));
  CHECK(glob_matches("team/*", "team/sub/app"));
  CHECK_FALSE(glob_matches("team/*", "teams/app"));
  CHECK(glob_matches("*", "anything/at/all"));
  CHECK(glob_matches("a?c", "abc"));
  CHECK_FALSE(glob_matches("a?c", "ac"));
  CHECK(glob_matches("*/app", "x/y/app"));
  CHECK_FALSE(glob_matches(std::string(30, '*') + "b", std::string(5000, 'a')));  // no blow-up either

  auto rules = AccessRules::parse(
      "group ci: builder deployer  # the pipeline\n"
      "@ci          pull,push   ci/* team/*\n"
      "deployer     delete      team/*\n"
      "authenticated pull       public/*\n",
      "access");
  REQUIRE(rules);
  CHECK(rules->rights("builder", "ci/x") == (kPull | kPush));
  CHECK(rules->rights("deployer", "team/app") == kAll);
  CHECK(rules->rights("builder", "other/x") == kPull);  // what anonymous may, users may
  CHECK(rules->rights("builder", "team/x") == (kPull | kPush));
  CHECK(rules->rights("stranger", "public/x") == kPull);
  CHECK(rules->rights("", "anything") == kPull);  // no anonymous rule: anonymous pulls stay
  CHECK(rules->may_somewhere("deployer", kDelete));
  CHECK_FALSE(rules->may_somewhere("builder", kDelete));

  auto closed = AccessRules::parse("anonymous none\nalice all *\n", "access");
  REQUIRE(closed);
  CHECK(closed->rights("", "team/app") == 0);
  CHECK(closed->rights("bob", "team/app") == 0);

  CHECK_FALSE(AccessRules::parse("@nobody pull *\n", "access"));
  CHECK_FALSE(AccessRules::parse("alice pul *\n", "access"));
  CHECK_FALSE(AccessRules::parse("alice pull\n", "access"));
  CHECK_FALSE(AccessRules::parse("group broken alice\n", "access"));
  auto defaults = AccessRules::defaults();
  CHECK(defaults.rights("", "x") == kPull);
  CHECK(defaults.rights("anyone", "x") == kAll);
}

TEST_CASE("tokens: a site's token verifies on any node with its key; forged, foreign or expired ones do not") {
  TokenSigner::Key key;
  key.fill(1);
  TokenSigner n1(key), n2(key);
  TokenClaims claims;
  claims.user = "alice";
  claims.issuer = "n1";
  claims.issued_ms = 1000;
  claims.expires_ms = 2000;
  claims.access["team/app"] = kPull | kPush;
  auto token = n1.issue(claims);
  auto ok = n2.verify(token, 1500);
  REQUIRE(ok);
  CHECK(ok->user == "alice");
  CHECK(ok->access.at("team/app") == (kPull | kPush));

  auto expired = n2.verify(token, 2000);
  REQUIRE_FALSE(expired);
  CHECK(expired.status().message == "token expired");

  TokenSigner::Key other;
  other.fill(2);
  CHECK_FALSE(TokenSigner(other).verify(token, 1500));

  std::string forged = token;  // a changed claim (another user's name) breaks the MAC
  claims.user = "mallory";
  auto mallory = n1.issue(claims);
  forged = mallory.substr(0, mallory.find('.')) + token.substr(token.find('.'));
  auto refused = n2.verify(forged, 1500);
  REQUIRE_FALSE(refused);
  CHECK(refused.status().code == Errc::unauthorized);
  CHECK_FALSE(n2.verify("garbage", 1500));
  CHECK_FALSE(n2.verify("", 1500));
}

TEST_CASE("no users: anonymous writes only from loopback, pulls from anywhere") {
  Node node("", /*with_users=*/false);
  CHECK(node.decide(want(kPush, "team/app"), kLoopback).kind == Decision::Kind::allow);
  CHECK(node.decide(want(kDelete, "team/app"), kLoopback).kind == Decision::Kind::allow);
  CHECK(node.decide(want(kPull, "team/app"), kRemote).kind == Decision::Kind::allow);
  auto push = node.decide(want(kPush, "team/app"), kRemote);
  REQUIRE(push.kind == Decision::Kind::refuse);
  CHECK(push.refusal.code == Errc::unauthorized);
  CHECK(push.refusal.message.find("htpasswd-file") != std::string::npos);
  CHECK(push.challenge.rfind("Basic ", 0) == 0);
  auto login = node.decide(want(kPull, "team/app", basic("alice", "secret")), kLoopback);
  REQUIRE(login.kind == Decision::Kind::refuse);
  CHECK(login.refusal.message.find("no users") != std::string::npos);
}

TEST_CASE("users: anonymous is challenged, a user gets what the rules give") {
  Node node;
  auto anonymous = node.decide(want(kPush, "team/app"));
  REQUIRE(anonymous.kind == Decision::Kind::refuse);
  CHECK(anonymous.refusal.code == Errc::unauthorized);
  CHECK(anonymous.challenge ==
        "Bearer realm=\"http://node1:5000/v2/token\",service=\"edgepier\",scope=\"repository:team/app:pull,push\"");
  CHECK(node.decide(want(kPull, "team/app")).kind == Decision::Kind::allow);  // anonymous pulls stay

  auto probe = want(0, "");
  probe.probe = true;
  CHECK(node.decide(probe).refusal.code == Errc::unauthorized);  // clients log in at /v2/
  const std::string alice_login = basic("alice", "secret");
  probe.authorization = alice_login;
  CHECK(node.decide(probe).kind == Decision::Kind::allow);

  auto alice = node.decide(want(kPush, "team/app", basic("alice", "secret")));
  REQUIRE(alice.kind == Decision::Kind::allow);
  CHECK(alice.identity.user == "alice");
  auto bob = node.decide(want(kPush, "team/app", basic("bob", "other")));
  REQUIRE(bob.kind == Decision::Kind::refuse);
  CHECK(bob.refusal.code == Errc::denied);
  CHECK(bob.refusal.message == "bob may not push team/app");
  auto wrong = node.decide(want(kPull, "team/app", basic("alice", "guess")));
  CHECK(wrong.refusal.code == Errc::unauthorized);
  CHECK(wrong.refusal.message == "invalid username or password");
  CHECK(node.decide(want(kPull, "team/app", basic("alice", "guess"))).kind == Decision::Kind::refuse);

  // Basic credentials cross the network only inside TLS
  auto plain = node.access->decide(want(kPush, "team/app", basic("alice", "secret")), kRemote, 0);
  REQUIRE(plain.kind == Decision::Kind::refuse);
  CHECK(plain.refusal.message.find("plain HTTP") != std::string::npos);
  CHECK(node.decide(want(kPush, "team/app", basic("alice", "secret")), kRemoteTls).kind == Decision::Kind::allow);
}

TEST_CASE("the token flow: tokens carry what the user may do, no more") {
  Node node;
  auto alice = node.token(basic("alice", "secret"), {"repository:team/app:pull,push", "repository:other/x:push"});
  auto bob = node.token(basic("bob", "other"), {"repository:team/app:pull,push"});
  auto anonymous = node.token("", {"repository:team/app:pull,push"});

  CHECK(node.decide(want(kPush, "team/app", "Bearer " + alice)).kind == Decision::Kind::allow);
  // alice may push to team/ only: the token did not grant other/x
  CHECK(node.decide(want(kPush, "other/x", "Bearer " + alice)).refusal.code == Errc::denied);
  // bob's token was granted pull only
  CHECK(node.decide(want(kPull, "team/app", "Bearer " + bob)).kind == Decision::Kind::allow);
  CHECK(node.decide(want(kPush, "team/app", "Bearer " + bob)).refusal.code == Errc::denied);
  // an anonymous token pulls, and a push with it asks the client to log in
  CHECK(node.decide(want(kPull, "team/app", "Bearer " + anonymous)).kind == Decision::Kind::allow);
  auto push = node.decide(want(kPush, "team/app", "Bearer " + anonymous));
  CHECK(push.refusal.code == Errc::unauthorized);
  CHECK(push.challenge.find("Bearer realm=") == 0);
  // a pull-only token of a user who may push: 401 insufficient_scope, so the client fetches a wider token
  auto pull_only = node.token(basic("alice", "secret"), {"repository:team/app:pull"});
  auto narrow = node.decide(want(kPush, "team/app", "Bearer " + pull_only));
  CHECK(narrow.refusal.code == Errc::unauthorized);
  CHECK(narrow.challenge.find("error=\"insufficient_scope\"") != std::string::npos);
  // a forged token is refused
  std::string forged = alice;
  forged[forged.size() - 3] = forged[forged.size() - 3] == 'A' ? 'B' : 'A';
  CHECK(node.decide(want(kPull, "team/app", "Bearer " + forged)).refusal.code == Errc::unauthorized);
}

TEST_CASE("reload: an edited file takes effect, a broken one keeps the policy in force") {
  Node node;
  const auto before = node.access->fingerprint();
  CHECK(node.decide(want(kPush, "team/app", basic("bob", "other"))).refusal.code == Errc::denied);
  node.files.write("access", "bob all *\n");
  auto changed = node.access->reload();
  REQUIRE(changed);
  CHECK(*changed);
  CHECK(node.access->fingerprint() != before);
  CHECK(node.decide(want(kPush, "team/app", basic("bob", "other"))).kind == Decision::Kind::allow);
  const auto good = node.access->fingerprint();
  node.files.write("access", "bob everything *\n");
  CHECK_FALSE(node.access->reload());
  CHECK(node.access->fingerprint() == good);
  CHECK(node.decide(want(kPush, "team/app", basic("bob", "other"))).kind == Decision::Kind::allow);
}
