// The one OCI error table: maps ep::Errc to an HTTP status and an OCI error
// code, and renders the JSON error body. Only http/ uses it.
#pragma once

#include "base/error.h"
#include "http/reply.h"

namespace ep::http {

struct OciError {
  unsigned status;
  const char* code;
};

OciError oci_error_for(Errc code);
// {"errors":[{"code":..,"message":..,"detail":{}}]} with the table's status.
Reply error_reply(const Status& status);

}  // namespace ep::http
