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
// Each pin with its holders and every live node's progress on it: bytes it
// holds or announced (whole blobs, or chunk bitmaps of `chunk_size` chunks).
std::string pins_json(const site::SiteCore& core, Registry& registry, uint64_t chunk_size);
std::string pin_json(const site::SiteCore& core, Registry& registry, const std::string& ref, uint64_t chunk_size);

}  // namespace ep::actors
