#include "base/error.h"

namespace ep {

const char* errc_name(Errc code) {
  switch (code) {
    case Errc::ok: return "ok";
    case Errc::blob_unknown: return "blob_unknown";
    case Errc::blob_upload_invalid: return "blob_upload_invalid";
    case Errc::blob_upload_unknown: return "blob_upload_unknown";
    case Errc::digest_invalid: return "digest_invalid";
    case Errc::manifest_blob_unknown: return "manifest_blob_unknown";
    case Errc::manifest_invalid: return "manifest_invalid";
    case Errc::manifest_unknown: return "manifest_unknown";
    case Errc::name_invalid: return "name_invalid";
    case Errc::name_unknown: return "name_unknown";
    case Errc::tag_invalid: return "tag_invalid";
    case Errc::size_invalid: return "size_invalid";
    case Errc::range_invalid: return "range_invalid";
    case Errc::too_large: return "too_large";
    case Errc::unsupported: return "unsupported";
    case Errc::bad_request: return "bad_request";
    case Errc::not_found: return "not_found";
    case Errc::method_not_allowed: return "method_not_allowed";
    case Errc::busy: return "busy";
    case Errc::unauthorized: return "unauthorized";
    case Errc::denied: return "denied";
    case Errc::upstream_unavailable: return "upstream_unavailable";
    case Errc::io_error: return "io_error";
    case Errc::timed_out: return "timed_out";
    case Errc::overloaded: return "overloaded";
    case Errc::out_of_space: return "out_of_space";
    case Errc::config_invalid: return "config_invalid";
  }
  return "unknown";
}

}  // namespace ep
