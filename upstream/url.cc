// Url (see http_client.h): parsing upstream URLs and Location headers.
#include "upstream/http_client.h"

#include <charconv>

namespace ep {

Result<Url> Url::parse(const std::string& text) {
  Url url;
  auto scheme_end = text.find("://");
  if (scheme_end == std::string::npos) return Status{Errc::bad_request, "not a URL: " + text};
  url.scheme = text.substr(0, scheme_end);
  if (url.scheme != "http" && url.scheme != "https") return Status{Errc::bad_request, "unsupported URL scheme: " + text};
  auto rest = text.substr(scheme_end + 3);
  auto slash = rest.find('/');
  auto authority = rest.substr(0, slash);
  url.target = slash == std::string::npos ? "/" : rest.substr(slash);
  url.port = url.scheme == "https" ? 443 : 80;
  auto colon = authority.rfind(':');
  if (colon != std::string::npos && authority.find(']', colon) == std::string::npos) {
    unsigned port = 0;
    auto p = authority.substr(colon + 1);
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
    if (ec != std::errc() || ptr != p.data() + p.size() || port == 0 || port > 65535)
      return Status{Errc::bad_request, "bad port in URL: " + text};
    url.port = static_cast<unsigned short>(port);
    authority = authority.substr(0, colon);
  }
  if (authority.size() >= 2 && authority.front() == '[') authority = authority.substr(1, authority.size() - 2);
  if (authority.empty()) return Status{Errc::bad_request, "no host in URL: " + text};
  url.host = authority;
  return url;
}

std::string Url::origin() const {
  bool default_port = (scheme == "https" && port == 443) || (scheme == "http" && port == 80);
  return scheme + "://" + host + (default_port ? "" : ":" + std::to_string(port));
}

Result<Url> Url::resolve(const std::string& location) const {
  if (location.find("://") != std::string::npos) return parse(location);
  if (location.empty() || location.front() != '/') return Status{Errc::bad_request, "unsupported Location: " + location};
  Url url = *this;
  url.target = location;
  return url;
}

}  // namespace ep
