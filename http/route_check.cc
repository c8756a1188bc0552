#include "http/route_check.h"

#include "base/digest.h"
#include "base/names.h"

namespace ep::http {

namespace {

bool is_upload_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
      return false;
  return true;
}

Status check_manifest_reference(std::string_view reference, RouteUse use) {
  Status status = check_reference(reference);
  if (status || use == RouteUse::write) return status;
  // Reading or deleting something that cannot exist: it is unknown.
  return Status{Errc::manifest_unknown, "manifest unknown: " + status.message};
}

}  // namespace

Status check_reference(std::string_view reference) {
  return looks_like_digest(reference) ? Digest::parse(reference).status() : validate_tag(reference);
}

Status check_route(const Route& route, RouteUse use) {
  switch (route.kind) {
    case RouteKind::manifest:
    case RouteKind::blob:
    case RouteKind::upload_start:
    case RouteKind::upload:
    case RouteKind::tags:
    case RouteKind::referrers:
      if (auto s = validate_repository(route.name); !s) return s;
      break;
    default:
      return Status::Ok();
  }
  switch (route.kind) {
    case RouteKind::manifest:
      return check_manifest_reference(route.reference, use);
    case RouteKind::blob:
    case RouteKind::referrers:
      return Digest::parse(route.reference).status();
    case RouteKind::upload:
      if (is_upload_id(route.reference)) return Status::Ok();
      return Status{Errc::blob_upload_unknown, "blob upload unknown: not an upload id"};
    default:
      return Status::Ok();
  }
}

bool is_registry_host(std::string_view ns) {
  if (ns.empty() || ns.size() > 255) return false;
  for (char c : ns)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
          c == ':' || c == '_' || c == '[' || c == ']'))
      return false;
  return true;
}

}  // namespace ep::http
