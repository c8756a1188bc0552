// The front door's grammar check: every repository name, reference, digest
// and upload id in a request is checked here, after percent-decoding, before
// any handler, store or log uses it.
//
// Pure functions. Invariant: a route that passes holds only ASCII from the
// OCI grammar in `name` and `reference`, so nothing downstream sees bytes
// that could break JSON, a RocksDB key, a file path or a header.
#pragma once

#include <string_view>

#include "base/error.h"
#include "http/router.h"

namespace ep::http {

enum class RouteUse { read, write, remove };

// Ok, or the OCI error the distribution spec gives for the first invalid
// part: NAME_INVALID for a name; for a manifest reference MANIFEST_UNKNOWN
// on GET/HEAD/DELETE (conformance: an invalid tag is a 404), TAG_INVALID or
// DIGEST_INVALID on PUT; DIGEST_INVALID for a blob or referrers digest;
// BLOB_UPLOAD_UNKNOWN for an upload id that no upload could have.
Status check_route(const Route& route, RouteUse use);

// A manifest reference: a tag (TAG_INVALID) or a digest (DIGEST_INVALID).
Status check_reference(std::string_view reference);

// True for a registry host as `?ns=` names it (host[:port], ASCII), which is
// safe to echo in a header.
bool is_registry_host(std::string_view ns);

}  // namespace ep::http
