#include "http/oci_errors.h"

#include <nlohmann/json.hpp>
#include "base/json_text.h"

namespace ep::http {

OciError oci_error_for(Errc code) {
  switch (code) {
    case Errc::ok: return {200, ""};
    case Errc::blob_unknown: return {404, "BLOB_UNKNOWN"};
    case Errc::blob_upload_invalid: return {400, "BLOB_UPLOAD_INVALID"};
    case Errc::blob_upload_unknown: return {404, "BLOB_UPLOAD_UNKNOWN"};
    case Errc::digest_invalid: return {400, "DIGEST_INVALID"};
    case Errc::manifest_blob_unknown: return {400, "MANIFEST_BLOB_UNKNOWN"};
    case Errc::manifest_invalid: return {400, "MANIFEST_INVALID"};
    case Errc::manifest_unknown: return {404, "MANIFEST_UNKNOWN"};
    case Errc::name_invalid: return {400, "NAME_INVALID"};
    case Errc::name_unknown: return {404, "NAME_UNKNOWN"};
    case Errc::tag_invalid: return {400, "TAG_INVALID"};
    case Errc::size_invalid: return {400, "SIZE_INVALID"};
    case Errc::range_invalid: return {416, "RANGE_INVALID"};
    case Errc::too_large: return {413, "SIZE_INVALID"};
    case Errc::unsupported: return {405, "UNSUPPORTED"};
    case Errc::bad_request: return {400, "UNSUPPORTED"};
    case Errc::not_found: return {404, "NOT_FOUND"};
    case Errc::method_not_allowed: return {405, "UNSUPPORTED"};
    case Errc::busy: return {429, "TOOMANYREQUESTS"};
    case Errc::unauthorized: return {401, "UNAUTHORIZED"};
    case Errc::denied: return {403, "DENIED"};
    case Errc::upstream_unavailable: return {503, "UNAVAILABLE"};
    case Errc::io_error: return {500, "UNKNOWN"};
    // 507 Insufficient Storage: the request was fine and may succeed later;
    // OCI has no code of its own for it, the message says what is wrong.
    case Errc::out_of_space: return {507, "UNKNOWN"};
    case Errc::timed_out: return {503, "UNAVAILABLE"};
    case Errc::overloaded: return {503, "UNAVAILABLE"};
    case Errc::config_invalid: return {500, "UNKNOWN"};
  }
  return {500, "UNKNOWN"};
}

Reply error_reply(const Status& status) {
  auto err = oci_error_for(status.code);
  nlohmann::json body = {
      {"errors", {{{"code", err.code}, {"message", status.message}, {"detail", nlohmann::json::object()}}}}};
  Reply reply;
  reply.status = err.status;
  reply.content_type = "application/json";
  reply.body = json_text(body);
  // RFC 9110 requires a challenge with every 401. Clients do not log in to a
  // node (it holds the upstream credentials itself), so the realm says what
  // failed rather than offering a login that could help.
  if (err.status == 401) reply.header("WWW-Authenticate", "Basic realm=\"edgepier: upstream refused the node's credentials\"");
  return reply;
}

}  // namespace ep::http
