// AccessRules: who may pull, push and delete which repositories, parsed
// from the access file (setting `access-file`). Immutable after parse, so
// any thread may read it.
//
// The format, one rule per line ('#' starts a comment):
//
//   group ci: builder deployer         # a group and its members
//   anonymous      pull        *       # clients without credentials
//   authenticated  pull        *       # every user of the htpasswd file
//   @ci            pull,push   team/* ci/*
//   alice          all         *
//
// A rule names a subject (a user, @group, `anonymous` or `authenticated`),
// rights (pull, push, delete, comma-separated; `all` for the three; `none`
// grants nothing) and one or more repository patterns, where `*` matches
// any run of characters including '/' and `?` one character. A subject's
// rights on a repository are the union of every rule that matches it:
// order does not matter and nothing is denied by a rule; what `anonymous`
// may do, every user may do too. A file without an
// `anonymous` rule keeps anonymous pulls of everything (kubelets pull
// without credentials); `anonymous none` turns them off.
//
// With no access file, the built-in rules are `anonymous pull *` and
// `authenticated all *` (any user may write, as with docker-registry).
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace ep::access {

// Rights as bits.
enum Right : uint8_t { kPull = 1, kPush = 2, kDelete = 4, kAll = 7 };
// "pull,push" for a set of rights ("" for none).
std::string rights_text(uint8_t rights);

// `*` matches any run of characters (including '/'), `?` one character.
bool glob_matches(std::string_view pattern, std::string_view text);

class AccessRules {
 public:
  static AccessRules defaults();
  // config_invalid naming `origin` and the line for anything malformed.
  static Result<AccessRules> parse(std::string_view text, const std::string& origin);

  // What `user` ("" for anonymous) may do on `repository`.
  uint8_t rights(const std::string& user, std::string_view repository) const;
  // True when `user` may `right` some repository (the catalog is filtered
  // by pull rights repository by repository).
  bool may_somewhere(const std::string& user, uint8_t right) const;

 private:
  struct Rule {
    std::string subject;  // user, "@group", "anonymous" or "authenticated"
    uint8_t rights = 0;
    std::vector<std::string> patterns;
  };
  bool applies(const Rule& rule, const std::string& user) const;

  std::vector<Rule> rules_;
  std::map<std::string, std::set<std::string>> groups_;  // group -> members
};

}  // namespace ep::access
