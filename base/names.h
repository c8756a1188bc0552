// Validation of repository names and tags against the OCI distribution grammar.
//
// Pure functions; they never touch storage. Everything that reaches storage
// keys or file paths has passed these checks (names cannot contain "..",
// NUL, or a leading/trailing slash, so they are safe as key components).
#pragma once

#include <string_view>

#include "base/error.h"

namespace ep {

constexpr size_t kMaxRepositoryName = 255;

// [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
Status validate_repository(std::string_view name);
// [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
Status validate_tag(std::string_view tag);

}  // namespace ep
