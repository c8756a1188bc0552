// Fuzzes the registry's access input (access/): the access file
// (AccessRules::parse), the htpasswd file (Htpasswd::parse), an
// Authorization header's Basic credentials (parse_basic) and a bearer token
// (TokenSigner::verify). Every input is fed to all four, so the corpus holds
// access files, htpasswd files and header values alike.
//
// Asserts: a user never has fewer rights than anonymous, and no right
// outside pull, push and delete; a parsed htpasswd user is valid UTF-8; a
// Basic user holds no colon; no input verifies as a token (the key is
// secret to the harness), and a token issued for the input as user name
// verifies back to it when it is valid UTF-8.
#include <cstdint>
#include <string>

#include "access/access_control.h"
#include "base/json_text.h"
#include "fuzz_check.h"

using namespace ep;
using namespace ep::access;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);

  if (auto rules = AccessRules::parse(input, "fuzz-access")) {
    for (const std::string& repository : {std::string("team/app"), std::string("x"), input.substr(0, 64)})
      for (const std::string& user : {std::string("alice"), std::string("bob"), input.substr(0, 16)}) {
        const uint8_t user_rights = rules->rights(user, repository);
        FUZZ_CHECK((user_rights & ~kAll) == 0);
        FUZZ_CHECK((rules->rights("", repository) & ~user_rights) == 0);
      }
  }
  if (auto users = Htpasswd::parse(input, "fuzz-htpasswd")) FUZZ_CHECK(users->size() <= input.size() / 60);

  std::string user, password;
  if (parse_basic("Basic " + input, user, password)) FUZZ_CHECK(user.find(':') == std::string::npos);

  TokenSigner::Key key;
  key.fill(0x5a);
  TokenSigner signer(key);
  FUZZ_CHECK(!signer.verify(input, 1000));
  TokenClaims claims;
  claims.user = input;
  claims.expires_ms = 2000;
  claims.access[input] = kPull;
  auto back = signer.verify(signer.issue(claims), 1000);
  FUZZ_CHECK(back);
  if (is_valid_utf8(input)) FUZZ_CHECK(back->user == input && back->access.count(input) == 1);

  const size_t half = input.size() / 2;
  (void)glob_matches(input.substr(0, half), input.substr(half));
  return 0;
}
