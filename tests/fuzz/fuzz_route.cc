// Fuzzes the front door's parsing of a request target: http/router
// (parse_route: query split, percent-decoding, route recognition),
// http/route_check (check_route, check_reference) and the OCI grammar of
// base/names (validate_repository, validate_tag) and base/digest
// (Digest::parse, looks_like_digest). Input: one request target, as a client
// sends it after the method ("/v2/library/alpine/manifests/latest?ns=x").
//
// Asserts:
// - a route that passes check_route holds only grammar ASCII in its name and
//   reference, and its name passes validate_repository;
// - a parsed digest re-renders to the same text, parses again and looks like
//   a digest; a valid repository name has no empty component;
// - url_encode round-trips: a valid name through a tags route, any bytes
//   through a query parameter.
#include <cstdint>
#include <string>
#include <string_view>

#include "base/digest.h"
#include "base/names.h"
#include "fuzz_check.h"
#include "http/route_check.h"
#include "http/router.h"

using namespace ep;
using namespace ep::http;

namespace {

bool grammar_ascii(std::string_view text) {
  for (char c : text)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
          c == '-' || c == '/' || c == ':'))
      return false;
  return true;
}

void check_digest(std::string_view text) {
  auto digest = Digest::parse(text);
  if (!digest) return;
  FUZZ_CHECK(digest->str() == text);
  FUZZ_CHECK(digest->hex().size() == 64);
  FUZZ_CHECK(looks_like_digest(text));
  auto again = Digest::parse(digest->str());
  FUZZ_CHECK(again && *again == *digest);
}

void check_name(std::string_view name) {
  if (!validate_repository(name)) return;
  FUZZ_CHECK(!name.empty() && name.size() <= kMaxRepositoryName);
  FUZZ_CHECK(name.front() != '/' && name.back() != '/' && name.find("//") == std::string_view::npos);
  FUZZ_CHECK(grammar_ascii(name) && name.find(':') == std::string_view::npos);
  // A valid name survives the trip through a URL.
  auto back = parse_route("/v2/" + url_encode(name) + "/tags/list");
  FUZZ_CHECK(back.kind == RouteKind::tags && back.name == name);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  const Route route = parse_route(input);
  (void)route_label(route.kind);
  for (auto use : {RouteUse::read, RouteUse::write, RouteUse::remove}) {
    if (!check_route(route, use)) continue;
    FUZZ_CHECK(grammar_ascii(route.name) && grammar_ascii(route.reference));
    if (!route.name.empty()) FUZZ_CHECK(validate_repository(route.name).ok());
  }
  check_name(route.name);
  check_digest(route.reference);
  (void)check_reference(route.reference);
  (void)validate_tag(route.reference);
  if (validate_tag(route.reference)) FUZZ_CHECK(route.reference.size() <= 128 && grammar_ascii(route.reference));
  for (const auto& [key, value] : route.query) (void)is_registry_host(value);

  // The raw input as each grammar's text.
  check_digest(input);
  check_name(input);
  (void)validate_tag(input);

  // Any bytes come back from a query parameter.
  auto query = parse_route("/v2/_catalog?last=" + url_encode(input));
  FUZZ_CHECK(query.kind == RouteKind::catalog && query.param("last") == input);
  return 0;
}
