// Api (api.h): the access check in front of every request, the token
// endpoint and the write log. The decisions themselves are
// access::AccessControl's; this file maps routes to the rights they need
// and refusals to OCI errors with their challenge.
#include <charconv>
#include <sstream>

#include "base/clock.h"
#include "base/log.h"
#include "http/api.h"
#include "http/oci_errors.h"

namespace ep::http {

namespace verb = boost::beast::http;
using boost::beast::http::field;

namespace {

// What a write request will store: its Content-Length (0 when unknown);
// nothing for a request that writes no blob or manifest.
std::optional<uint64_t> bytes_written(const Route& route, const RequestHead& head) {
  const auto method = head.method();
  const bool writes = (route.kind == RouteKind::upload_start && method == verb::verb::post) ||
                      (route.kind == RouteKind::upload && (method == verb::verb::patch || method == verb::verb::put)) ||
                      (route.kind == RouteKind::manifest && method == verb::verb::put);
  if (!writes) return std::nullopt;
  uint64_t length = 0;
  auto header = head[field::content_length];
  std::from_chars(header.data(), header.data() + header.size(), length);
  return length;
}

// The right a request needs on its repository (0: none, or not a repository route).
uint8_t right_needed(const Route& route, verb::verb method) {
  const bool read = method == verb::verb::get || method == verb::verb::head;
  switch (route.kind) {
    case RouteKind::tags:
    case RouteKind::referrers: return access::kPull;
    case RouteKind::manifest:
    case RouteKind::blob:
      return read ? access::kPull : method == verb::verb::delete_ ? access::kDelete : access::kPush;
    case RouteKind::upload_start:
    case RouteKind::upload: return access::kPush;
    default: return 0;
  }
}

std::string_view header_text(const RequestHead& head, field name) {
  auto value = head[name];
  return {value.data(), value.size()};
}

Handling refusal(const access::Decision& decision) {
  Reply reply = error_reply(decision.refusal);
  if (!decision.challenge.empty()) {
    for (auto& [name, value] : reply.headers)
      if (name == "WWW-Authenticate") value = decision.challenge;
  }
  return answer(std::move(reply));
}

// The reference and digest a successful write reply names.
std::pair<std::string, std::string> written(const Route& route, const Reply& reply) {
  std::string digest;
  for (const auto& [name, value] : reply.headers)
    if (name == "Docker-Content-Digest") digest = value;
  if (route.kind == RouteKind::upload) return {route.param("digest"), digest};
  return {route.reference, digest.empty() ? route.reference : digest};
}

}  // namespace

Handling Api::handle(const RequestHead& head, const access::Caller& caller) {
  return handle_request(head, caller, /*prepared=*/false);
}

Handling Api::handle_prepared(const RequestHead& head, const access::Caller& caller) {
  return handle_request(head, caller, /*prepared=*/true);
}

Handling Api::handle_request(const RequestHead& head, const access::Caller& caller, bool prepared) {
  auto route = parse_route(std::string_view(head.target().data(), head.target().size()));
  access::AccessRequest request;
  request.authorization = header_text(head, field::authorization);
  request.host = header_text(head, field::host);
  request.repository = route.name;
  request.right = right_needed(route, head.method());
  request.probe = route.kind == RouteKind::base;
  auto decision = access_.decide(request, caller, wall_clock_ms());
  Handling h;
  if (decision.kind == access::Decision::Kind::verify_first) {
    if (prepared)  // checked a moment ago, and forgotten since (the cache was full): rare
      h = fail(Status{Errc::busy, "too many logins at once; retry"});
    else
      h.prepare = [this, authorization = std::string(request.authorization)] { access_.verify(authorization); };
  } else if (decision.kind == access::Decision::Kind::refuse) {
    h = refusal(decision);
  } else if (auto bytes = bytes_written(route, head);
             !prepared && bytes && !blobs_.admit(*bytes) && blobs_.can_make_room()) {
    h.prepare = [this, wanted = *bytes] { (void)blobs_.admit_making_room(wanted); };
  } else {
    // A mount is a read of the source repository: without that right, the
    // client uploads the blob instead (a 202, as when the source lacks it).
    if (route.kind == RouteKind::upload_start && route.has("mount")) {
      const std::string from = route.param("from");
      if (from.empty() ? access_.has_users() : !(access_.rights(decision.identity, from) & access::kPull))
        route.query.erase("mount");
    }
    h = begin(route, head, decision.identity, caller);
  }
  h.route = route.kind;
  return h;
}

Reply Api::token(const Route& route, const access::Identity& who) {
  std::vector<std::string> scopes;
  for (const auto& value : route.params("scope")) {  // several, or one space-separated list
    std::istringstream words(value);
    for (std::string scope; words >> scope;) scopes.push_back(scope);
  }
  Reply reply = json_reply(access_.issue_token(who, scopes, wall_clock_ms()));
  reply.header("Cache-Control", "no-store");
  return reply;
}

Handling audited(Handling h, const Route& route, const RequestHead& head, const access::Identity& who,
                 const access::Caller& caller) {
  const auto method = head.method();
  const bool write = ((route.kind == RouteKind::manifest || route.kind == RouteKind::blob) &&
                      (method == verb::verb::put || method == verb::verb::delete_)) ||
                     (route.kind == RouteKind::upload && method == verb::verb::put);
  if (!write) return h;
  std::string action = method == verb::verb::delete_ ? "delete" : "push";
  return on_reply(std::move(h), [route, action, user = who.display(), address = caller.address](Reply reply) {
    if (reply.status < 300) {
      auto [reference, digest] = written(route, reply);
      log_info("write", action + " user=" + user + " repository=" + route.name + " reference=" + reference +
                            " digest=" + digest + " client=" + address);
    }
    return reply;
  });
}

}  // namespace ep::http
