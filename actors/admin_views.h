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
// What pin views need besides the index.
struct PinViewContext {
  uint64_t chunk_size = 0;       // what one bit of an announced chunk bitmap stands for
  uint64_t auto_pin_ttl_ms = 0;  // when an auto-pin lapses
  uint64_t now_ms = 0;           // wall clock
};

// Each pin with its kind (explicit or auto), last use, whether it lapsed, its
// holders and every live node's progress on it: bytes it holds or announced
// (whole blobs, or chunk bitmaps).
std::string pins_json(const site::SiteCore& core, Registry& registry, const PinViewContext& context);
std::string pin_json(const site::SiteCore& core, Registry& registry, const std::string& ref,
                     const PinViewContext& context);

}  // namespace ep::actors
