// JSON views of the site state for the admin API (shapes used by epctl).
// Called on the site actor's thread only.
#pragma once

#include <string>

#include "registry/registry.h"
#include "site/core.h"

namespace ep::actors {

std::string members_json(const site::SiteCore& core, uint64_t now_ms);
// `repo` filters by repository ("" = all); both "repo" and "ns/repo" match.
std::string tags_json(const site::SiteCore& core, const std::string& repo);
std::string pins_json(const site::SiteCore& core, Registry& registry);
std::string pin_json(const site::SiteCore& core, Registry& registry, const std::string& ref);

}  // namespace ep::actors
