#include "http/router.h"

#include <cctype>
#include <optional>
#include <vector>

namespace ep::http {

const char* route_label(RouteKind kind) {
  switch (kind) {
    case RouteKind::base: return "base";
    case RouteKind::catalog: return "catalog";
    case RouteKind::manifest: return "manifest";
    case RouteKind::blob: return "blob";
    case RouteKind::upload_start: return "upload_start";
    case RouteKind::upload: return "upload";
    case RouteKind::tags: return "tags";
    case RouteKind::referrers: return "referrers";
    case RouteKind::token: return "token";
    case RouteKind::healthz: return "healthz";
    case RouteKind::readyz: return "readyz";
    case RouteKind::metrics: return "metrics";
    case RouteKind::unknown:
    case RouteKind::count_: break;
  }
  return "unknown";
}

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> decode(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return std::nullopt;
      int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      // Any byte, NUL and non-UTF-8 included: the grammar checks
      // (route_check.h) refuse what a name or reference may not hold.
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string join(const std::vector<std::string_view>& segs, size_t count) {
  std::string out;
  for (size_t i = 0; i < count; ++i) {
    if (i) out.push_back('/');
    out.append(segs[i]);
  }
  return out;
}

}  // namespace

std::string url_encode(std::string_view value) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

Route parse_route(std::string_view target) {
  Route route;
  auto qpos = target.find('?');
  auto raw_path = target.substr(0, qpos);
  if (qpos != std::string_view::npos) {
    auto query = target.substr(qpos + 1);
    while (!query.empty()) {
      auto amp = query.find('&');
      auto pair = query.substr(0, amp);
      auto eq = pair.find('=');
      auto key = decode(pair.substr(0, eq), true);
      auto value = decode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1), true);
      if (!key || !value) return route;
      route.all_params.emplace_back(*key, *value);
      route.query.emplace(std::move(*key), std::move(*value));
      if (amp == std::string_view::npos) break;
      query = query.substr(amp + 1);
    }
  }
  auto decoded = decode(raw_path, false);
  if (!decoded) return route;
  std::string_view path = *decoded;

  if (path == "/healthz") route.kind = RouteKind::healthz;
  if (path == "/readyz") route.kind = RouteKind::readyz;
  if (path == "/metrics") route.kind = RouteKind::metrics;
  if (path == "/v2" || path == "/v2/") route.kind = RouteKind::base;
  if (path == "/v2/_catalog") route.kind = RouteKind::catalog;
  if (path == "/v2/token") route.kind = RouteKind::token;
  if (route.kind != RouteKind::unknown || path.substr(0, 4) != "/v2/") return route;

  std::vector<std::string_view> segs;
  auto rest = path.substr(4);
  while (true) {
    auto slash = rest.find('/');
    segs.push_back(rest.substr(0, slash));
    if (slash == std::string_view::npos) break;
    rest = rest.substr(slash + 1);
  }
  const size_t n = segs.size();
  if (n < 3) return route;
  auto set = [&](RouteKind kind, size_t name_segments, std::string_view reference) {
    route.kind = kind;
    route.name = join(segs, name_segments);
    route.reference = std::string(reference);
  };
  if (n >= 4 && segs[n - 3] == "blobs" && segs[n - 2] == "uploads") {
    set(segs[n - 1].empty() ? RouteKind::upload_start : RouteKind::upload, n - 3, segs[n - 1]);
  } else if (segs[n - 2] == "blobs" && segs[n - 1] == "uploads") {
    set(RouteKind::upload_start, n - 2, "");
  } else if (segs[n - 2] == "manifests") {
    set(RouteKind::manifest, n - 2, segs[n - 1]);
  } else if (segs[n - 2] == "blobs") {
    set(RouteKind::blob, n - 2, segs[n - 1]);
  } else if (segs[n - 2] == "tags" && segs[n - 1] == "list") {
    set(RouteKind::tags, n - 2, "");
  } else if (segs[n - 2] == "referrers") {
    set(RouteKind::referrers, n - 2, segs[n - 1]);
  }
  return route;
}

}  // namespace ep::http
