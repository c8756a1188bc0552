// Router: maps a request target to an API route (pure string parsing).
//
// Repository names contain slashes, so routes are recognised from the end of
// the path ("/manifests/<ref>", "/blobs/uploads/<id>", ...). The path is
// percent-decoded once; names, references and digests are then checked
// against the OCI grammar (route_check.h) before anything uses them.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ep::http {

enum class RouteKind {
  base,          // /v2/
  catalog,       // /v2/_catalog
  manifest,      // /v2/<name>/manifests/<reference>
  blob,          // /v2/<name>/blobs/<digest>
  upload_start,  // /v2/<name>/blobs/uploads/
  upload,        // /v2/<name>/blobs/uploads/<id>
  tags,          // /v2/<name>/tags/list
  referrers,     // /v2/<name>/referrers/<digest>
  token,         // /v2/token: the registry token endpoint (access/tokens.h)
  healthz,
  readyz,
  metrics,
  unknown,
  count_,
};

const char* route_label(RouteKind kind);

struct Route {
  RouteKind kind = RouteKind::unknown;
  std::string name;       // repository
  std::string reference;  // tag, digest or upload id
  std::map<std::string, std::string> query;  // first value of each parameter
  std::vector<std::pair<std::string, std::string>> all_params;  // every parameter, in order

  std::string param(const std::string& key) const {
    auto it = query.find(key);
    return it == query.end() ? std::string() : it->second;
  }
  bool has(const std::string& key) const { return query.count(key) != 0; }
  // Every value of a repeated parameter (the token endpoint's scope).
  std::vector<std::string> params(const std::string& key) const {
    std::vector<std::string> out;
    for (const auto& [k, v] : all_params)
      if (k == key) out.push_back(v);
    return out;
  }
};

// Returns kind unknown for targets that are not API routes or fail to decode.
Route parse_route(std::string_view target);

// Percent-encodes a query value (for Link headers).
std::string url_encode(std::string_view value);

}  // namespace ep::http
