// Router: routes are recognised from the end of the path; names with slashes.
#include <catch2/catch.hpp>

#include "http/route_check.h"
#include "http/router.h"

using namespace ep::http;

TEST_CASE("API routes are parsed from the end of the path") {
  auto r = parse_route("/v2/a/b/c/manifests/latest");
  CHECK(r.kind == RouteKind::manifest);
  CHECK(r.name == "a/b/c");
  CHECK(r.reference == "latest");

  r = parse_route("/v2/x/blobs/y/blobs/sha256:abc");
  CHECK(r.kind == RouteKind::blob);
  CHECK(r.name == "x/blobs/y");

  CHECK(parse_route("/v2/a/blobs/uploads/").kind == RouteKind::upload_start);
  CHECK(parse_route("/v2/a/blobs/uploads").kind == RouteKind::upload_start);
  r = parse_route("/v2/a/blobs/uploads/1234-ab?digest=sha256%3Aff");
  CHECK(r.kind == RouteKind::upload);
  CHECK(r.reference == "1234-ab");
  CHECK(r.param("digest") == "sha256:ff");

  r = parse_route("/v2/a/b/tags/list?n=2&last=x");
  CHECK(r.kind == RouteKind::tags);
  CHECK(r.name == "a/b");
  CHECK(r.param("n") == "2");
  CHECK(r.param("last") == "x");

  CHECK(parse_route("/v2/a/referrers/sha256:x").kind == RouteKind::referrers);
  CHECK(parse_route("/v2/").kind == RouteKind::base);
  CHECK(parse_route("/v2").kind == RouteKind::base);
  CHECK(parse_route("/v2/_catalog?n=1").kind == RouteKind::catalog);
  CHECK(parse_route("/metrics").kind == RouteKind::metrics);
}

TEST_CASE("unknown or undecodable targets are not routes") {
  CHECK(parse_route("/v3/a/manifests/x").kind == RouteKind::unknown);
  CHECK(parse_route("/v2/manifests/x").kind == RouteKind::unknown);
  CHECK(parse_route("/v2/a/manifests/%zz").kind == RouteKind::unknown);
  CHECK(parse_route("/v2/a/manifests/%2").kind == RouteKind::unknown);
  CHECK(parse_route("/etc/passwd").kind == RouteKind::unknown);
}

TEST_CASE("a percent-encoded NUL decodes, and the grammar check refuses it") {
  auto r = parse_route("/v2/a/manifests/%00");
  CHECK(r.kind == RouteKind::manifest);
  CHECK(r.reference == std::string(1, '\0'));
  CHECK(check_route(r, RouteUse::read).code == ep::Errc::manifest_unknown);
  CHECK(check_route(parse_route("/v2/a%00b/tags/list"), RouteUse::read).code == ep::Errc::name_invalid);
}

TEST_CASE("percent-encoded traversal decodes to a name the registry rejects") {
  auto r = parse_route("/v2/%2e%2e/%2e%2e/manifests/latest");
  CHECK(r.kind == RouteKind::manifest);
  CHECK(r.name == "../..");  // validate_repository refuses this
}
