#include "base/names.h"

#include <string>

namespace ep {

namespace {
bool alnum_lower(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// One path component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
bool valid_component(std::string_view c) {
  size_t i = 0, n = c.size();
  auto run = [&] {
    size_t start = i;
    while (i < n && alnum_lower(c[i])) ++i;
    return i > start;
  };
  if (!run()) return false;
  while (i < n) {
    if (c[i] == '.') {
      ++i;
    } else if (c[i] == '_') {
      ++i;
      if (i < n && c[i] == '_') ++i;
    } else if (c[i] == '-') {
      while (i < n && c[i] == '-') ++i;
    } else {
      return false;
    }
    if (!run()) return false;
  }
  return true;
}
}  // namespace

Status validate_repository(std::string_view name) {
  auto invalid = [&](const char* why) {
    return Status{Errc::name_invalid,
                  std::string("invalid repository name (") + why + "): " + std::string(name.substr(0, 300))};
  };
  if (name.empty()) return invalid("empty");
  if (name.size() > kMaxRepositoryName) return invalid("longer than 255 characters");
  size_t start = 0;
  while (true) {
    auto slash = name.find('/', start);
    auto comp = name.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (!valid_component(comp)) return invalid("components must match [a-z0-9]+((.|_|__|-+)[a-z0-9]+)*");
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return Status::Ok();
}

Status validate_tag(std::string_view tag) {
  auto ok_first = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  };
  bool valid = !tag.empty() && tag.size() <= 128 && ok_first(tag[0]);
  for (size_t i = 1; valid && i < tag.size(); ++i) valid = ok_first(tag[i]) || tag[i] == '.' || tag[i] == '-';
  if (!valid)
    return Status{Errc::tag_invalid,
                  "invalid tag (must match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}): " + std::string(tag.substr(0, 200))};
  return Status::Ok();
}

}  // namespace ep
