// Bytes from a request never break JSON output, and the front door's grammar
// check names the right OCI error for every part of a route.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>
#include <vector>

#include "base/json_text.h"
#include "base/log.h"
#include "base/digest.h"
#include "http/metrics.h"
#include "http/oci_errors.h"
#include "http/route_check.h"

using namespace ep;
using namespace ep::http;

TEST_CASE("json_text never throws on bytes that are not UTF-8, and its output parses") {
  for (std::string bad : std::vector<std::string>{"\xff", "app\xff", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", std::string("a\0b", 3)}) {
    nlohmann::json doc = {{"message", "invalid name: " + bad}};
    std::string text;
    REQUIRE_NOTHROW(text = json_text(doc));
    CHECK(is_valid_utf8(text));
    CHECK_NOTHROW(nlohmann::json::parse(text));
  }
}

TEST_CASE("is_valid_utf8 accepts UTF-8 and refuses overlong forms, surrogates and stray bytes") {
  CHECK(is_valid_utf8("plain"));
  CHECK(is_valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  CHECK_FALSE(is_valid_utf8("\xff"));
  CHECK_FALSE(is_valid_utf8("\xc0\xaf"));          // overlong '/'
  CHECK_FALSE(is_valid_utf8("\xe0\x80\xaf"));      // overlong, 3 bytes
  CHECK_FALSE(is_valid_utf8("\xed\xa0\x80"));      // surrogate
  CHECK_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  CHECK_FALSE(is_valid_utf8("\xc3"));              // cut short
}

TEST_CASE("printable escapes control bytes and invalid UTF-8 and bounds the length") {
  CHECK(printable("ok") == "ok");
  CHECK(printable("a\r\nb\xff") == "a\\x0d\\x0ab\\xff");
  CHECK(printable("caf\xc3\xa9") == "caf\xc3\xa9");
  CHECK(printable(std::string(300, 'a'), 10) == std::string(10, 'a') + "...");
}

TEST_CASE("an OCI error reply quoting invalid bytes is valid JSON") {
  auto reply = error_reply(Status{Errc::name_invalid, "invalid repository name: lib/app\xff"});
  CHECK(reply.status == 400);
  auto doc = nlohmann::json::parse(reply.body);
  CHECK(doc["errors"][0]["code"] == "NAME_INVALID");
}

TEST_CASE("guarded turns an exception into an io_error Status") {
  auto s = guarded("a test", []() -> Status { throw std::runtime_error("boom \xff"); });
  CHECK(s.code == Errc::io_error);
  CHECK(s.message.find("boom \\xff") != std::string::npos);
}

namespace {
Route route(RouteKind kind, std::string name, std::string reference) {
  Route r;
  r.kind = kind;
  r.name = std::move(name);
  r.reference = std::move(reference);
  return r;
}
const std::string kDigest = "sha256:" + std::string(64, 'a');
}  // namespace

TEST_CASE("check_route gives the spec's error for each invalid part") {
  CHECK(check_route(route(RouteKind::manifest, "lib/app", "latest"), RouteUse::read));
  CHECK(check_route(route(RouteKind::manifest, "lib/app", kDigest), RouteUse::write));
  CHECK(check_route(route(RouteKind::manifest, "lib/app\xff", "latest"), RouteUse::read).code == Errc::name_invalid);
  CHECK(check_route(route(RouteKind::manifest, "lib/app", "lat\xff" "est"), RouteUse::read).code ==
        Errc::manifest_unknown);
  CHECK(check_route(route(RouteKind::manifest, "lib/app", "sha256:\xff"), RouteUse::read).code ==
        Errc::manifest_unknown);
  CHECK(check_route(route(RouteKind::manifest, "lib/app", "lat\xff" "est"), RouteUse::remove).code ==
        Errc::manifest_unknown);
  CHECK(check_route(route(RouteKind::manifest, "lib/app", "lat\xff" "est"), RouteUse::write).code ==
        Errc::tag_invalid);
  CHECK(check_route(route(RouteKind::manifest, "lib/app", "sha256:abc"), RouteUse::write).code ==
        Errc::digest_invalid);
  CHECK(check_route(route(RouteKind::blob, "lib/app", "sha256:\xff"), RouteUse::read).code == Errc::digest_invalid);
  CHECK(check_route(route(RouteKind::referrers, "lib/app", "x"), RouteUse::read).code == Errc::digest_invalid);
  CHECK(check_route(route(RouteKind::upload, "lib/app", "\xff"), RouteUse::write).code == Errc::blob_upload_unknown);
  CHECK(check_route(route(RouteKind::upload, "lib/app", "0a1b-2c"), RouteUse::write));
  CHECK(check_route(route(RouteKind::tags, std::string("a\0b", 3), ""), RouteUse::read).code == Errc::name_invalid);
  CHECK(check_route(route(RouteKind::base, "", ""), RouteUse::read));
}

TEST_CASE("only host names are echoed as a namespace") {
  CHECK(is_registry_host("docker.io"));
  CHECK(is_registry_host("localhost:5000"));
  CHECK_FALSE(is_registry_host(""));
  CHECK_FALSE(is_registry_host("a\r\nX-Injected: 1"));
  CHECK_FALSE(is_registry_host("a\xff"));
}

TEST_CASE("a Prometheus label value cannot break the page") {
  CHECK(prometheus_label("edge-1") == "edge-1");
  CHECK(prometheus_label("a\"b\\c\nd") == "a\\\"b\\\\c\\nd");
}

TEST_CASE("random ids are random hex, never a fixed value") {
  auto a = random_hex(16), b = random_hex(16);
  REQUIRE(a);
  REQUIRE(b);
  CHECK(a->size() == 32);
  CHECK(*a != *b);
  CHECK(a->find_first_not_of("0123456789abcdef") == std::string::npos);
}
