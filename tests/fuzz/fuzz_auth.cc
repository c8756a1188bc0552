// Fuzzes upstream authentication input (upstream/auth): a docker
// config.json (parse_credentials, what load_credentials reads from
// upstream-credentials-file), a WWW-Authenticate challenge from an upstream
// (parse_challenge) and base64. Every input is fed to all three, so the
// corpus holds config.json files and challenge headers alike.
//
// Asserts: every credential's host key has no scheme or path and its Basic
// header decodes back to "user:password"; a challenge's scheme and
// parameter names are lowercase and the scheme holds no whitespace;
// base64_decode(base64_encode(x)) == x, and whatever base64_decode accepts
// is 3 bytes per 4 characters at most.
#include <cctype>
#include <cstdint>
#include <string>

#include "fuzz_check.h"
#include "upstream/auth.h"

using namespace ep;

namespace {

bool lowercase(const std::string& text) {
  for (unsigned char c : text)
    if (std::isupper(c)) return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);

  if (auto store = parse_credentials(input, "fuzz.json")) {
    for (const auto& [host, creds] : *store) {
      FUZZ_CHECK(host.find('/') == std::string::npos);
      const std::string header = creds.basic_header();
      FUZZ_CHECK(header.rfind("Basic ", 0) == 0);
      auto decoded = base64_decode(header.substr(6));
      FUZZ_CHECK(decoded && *decoded == creds.username + ":" + creds.password);
    }
    (void)find_credentials(*store, "registry-1.docker.io");
  }

  if (auto challenge = parse_challenge(input)) {
    FUZZ_CHECK(!challenge->scheme.empty() && lowercase(challenge->scheme));
    for (unsigned char c : challenge->scheme) FUZZ_CHECK(!std::isspace(c));
    for (const auto& [key, value] : challenge->params) FUZZ_CHECK(lowercase(key));
  }

  auto round = base64_decode(base64_encode(input));
  FUZZ_CHECK(round && *round == input);
  if (auto decoded = base64_decode(input)) FUZZ_CHECK(decoded->size() <= input.size() / 4 * 3);
  return 0;
}
