#include "actors/admin_views.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <sstream>

#include "actors/site_stats.h"
#include "base/json_text.h"

namespace ep::actors {

using nlohmann::json;

namespace {
json member_json(const wire::Member& m, const char* state, uint64_t last_seen_ms, bool self) {
  return {{"name", m.name()},
          {"cluster_address", m.cluster_address()},
          {"registry_address", m.registry_address()},
          {"data_address", m.data_address()},
          {"state", state},
          {"last_seen_ms", last_seen_ms},
          {"self", self},
          // Hash of the registry users and access rules it enforces: equal on every member.
          {"access_fingerprint", m.access_fingerprint()},
          // Blobs it announced it can serve now: being assembled, or recently completed.
          {"blobs_announced", m.blobs_size()}};
}

// The image's blobs with their sizes, as its manifests (stored here) list them.
struct ImageBlobs {
  std::vector<Digest> digests;
  std::vector<uint64_t> sizes;
  uint64_t total = 0;
};

// Bytes of the image `m` announced it can serve: whole blobs, or the chunks
// of blobs it is assembling. Blobs completed long ago are not announced;
// a member holding the whole image says so in `holds` instead.
uint64_t announced_bytes(const wire::Member& m, const ImageBlobs& image, uint64_t chunk_size) {
  uint64_t bytes = 0;
  for (const auto& holding : m.blobs()) {
    auto it = std::find_if(image.digests.begin(), image.digests.end(),
                           [&](const Digest& d) { return d.str() == holding.digest(); });
    if (it == image.digests.end()) continue;
    const uint64_t size = image.sizes[static_cast<size_t>(it - image.digests.begin())];
    if (holding.chunks().empty()) {
      bytes += size;
      continue;
    }
    uint64_t chunks = 0;
    for (unsigned char byte : holding.chunks()) chunks += static_cast<uint64_t>(__builtin_popcount(byte));
    bytes += std::min(size, chunks * chunk_size);
  }
  return bytes;
}

json progress_json(const std::string& node, bool complete, uint64_t bytes, uint64_t total) {
  return {{"node", node}, {"complete", complete}, {"bytes", complete ? total : std::min(bytes, total)}, {"total", total}};
}

json pin_view_json(const crdt::PinView& pin, const site::SiteCore& core, Registry& registry,
                   const PinViewContext& context) {
  const uint64_t chunk_size = context.chunk_size;
  ImageBlobs image;
  auto digests = registry.image_blobs(pin.ref, &image.sizes);
  if (digests) image.digests = std::move(*digests);
  for (auto size : image.sizes) image.total += size;
  json holders = json::array();
  json progress = json::array();
  // Held here when its manifests are and every blob they list is stored (as
  // Registry::holds_image decides), read once for the bytes as well.
  const auto repo = split_reference(pin.ref).first;
  uint64_t here = 0;
  bool held_here = digests.has_value();
  for (size_t i = 0; i < image.digests.size(); ++i) {
    if (registry.stat_blob(repo, image.digests[i].str()))
      here += image.sizes[i];
    else
      held_here = false;
  }
  if (held_here) holders.push_back(core.self().name());
  if (!held_here) here = std::max(here, announced_bytes(core.self(), image, chunk_size));
  progress.push_back(progress_json(core.self().name(), held_here, here, image.total));
  for (const auto& [name, m] : core.membership().members()) {  // as announced in their heartbeats
    if (m.liveness != site::Liveness::alive) continue;
    const auto& holds = m.info.holds();
    const bool complete = std::find(holds.begin(), holds.end(), pin.ref) != holds.end();
    if (complete) holders.push_back(name);
    progress.push_back(
        progress_json(name, complete, complete ? 0 : announced_bytes(m.info, image, chunk_size), image.total));
  }
  json replicas = pin.replicas == 0 ? json("all") : json(pin.replicas);
  return {{"ref", pin.ref},
          {"replicas", replicas},
          {"pinned_by", pin.pinned_by},
          {"pinned_at_ms", pin.pinned_at.wall_ms},
          {"target", pin.replicas == 0 ? core.membership().live_peers().size() + 1 : pin.replicas},
          {"holders", holders},
          {"size", image.total},
          {"progress", progress},
          {"kind", pin.explicit_pin ? "explicit" : "auto"},
          {"last_used_ms", pin.last_used_ms},
          {"lapsed", pin.lapsed(context.now_ms, context.auto_pin_ttl_ms)}};
}
}  // namespace

std::string members_json(const site::SiteCore& core, uint64_t now) {
  json members = json::array();
  members.push_back(member_json(core.self(), "alive", 0, true));
  for (const auto& [name, m] : core.membership().members())
    members.push_back(member_json(m.info, site::liveness_name(m.liveness),
                                  now > m.last_heard_ms ? now - m.last_heard_ms : 0, false));
  return json_text(json({{"members", members}}));
}

std::string tags_json(const site::SiteCore& core, const std::string& repo) {
  json tags = json::array();
  for (const auto& view : core.index().tags()) {
    const auto& k = view.key;
    if (!repo.empty() && repo != k.repo && repo != k.ns + "/" + k.repo && repo != mirror_repository(k.ns, k.repo))
      continue;
    json conflicts = json::array();
    for (const auto& c : view.conflicts)
      conflicts.push_back(
          {{"digest", c.digest}, {"updated_by", c.ts.node}, {"writer", c.writer}, {"updated_at_ms", c.ts.wall_ms}});
    tags.push_back({{"namespace", k.ns},
                    {"repository", k.repo},
                    {"tag", k.tag},
                    {"digest", view.value.digest},
                    {"media_type", view.value.media_type},
                    {"updated_by", view.value.ts.node},
                    {"writer", view.value.writer},
                    {"updated_at_ms", view.value.ts.wall_ms},
                    {"deleted", view.value.deleted()},
                    {"conflicts", conflicts}});
  }
  return json_text(json({{"tags", tags}}));
}

std::string pins_json(const site::SiteCore& core, Registry& registry, const PinViewContext& context) {
  json pins = json::array();
  for (const auto& pin : core.index().pins()) pins.push_back(pin_view_json(pin, core, registry, context));
  return json_text(json({{"pins", pins}}));
}

std::string pin_json(const site::SiteCore& core, Registry& registry, const std::string& ref,
                     const PinViewContext& context) {
  for (const auto& pin : core.index().pins())
    if (pin.ref == ref) return json_text(json({{"pin", pin_view_json(pin, core, registry, context)}}));
  return json_text(json({{"pin", nullptr}}));
}

std::string SiteStats::render() const {
  std::ostringstream out;
  out << "# HELP edgepier_site_members Site members by liveness (this node excluded).\n"
      << "# TYPE edgepier_site_members gauge\n"
      << "edgepier_site_members{state=\"alive\"} " << alive << "\n"
      << "edgepier_site_members{state=\"suspect\"} " << suspect << "\n"
      << "edgepier_site_members{state=\"dead\"} " << dead << "\n"
      << "edgepier_site_members{state=\"left\"} " << left << "\n"
      << "# HELP edgepier_anti_entropy_rounds_total Anti-entropy rounds this node started.\n"
      << "# TYPE edgepier_anti_entropy_rounds_total counter\n"
      << "edgepier_anti_entropy_rounds_total " << anti_entropy_rounds << "\n"
      << "# HELP edgepier_anti_entropy_repairs_total Repairs (differing buckets exchanged) received.\n"
      << "# TYPE edgepier_anti_entropy_repairs_total counter\n"
      << "edgepier_anti_entropy_repairs_total " << repairs << "\n"
      << "# HELP edgepier_control_messages_total Control-plane messages by outcome.\n"
      << "# TYPE edgepier_control_messages_total counter\n"
      << "edgepier_control_messages_total{direction=\"sent\"} " << messages_sent << "\n"
      << "edgepier_control_messages_total{direction=\"received\"} " << messages_received << "\n"
      << "edgepier_control_messages_total{direction=\"rejected\"} " << messages_rejected << "\n"
      << "# HELP edgepier_control_replays_dropped_total Verified control messages dropped as replays (also counted as rejected).\n"
      << "# TYPE edgepier_control_replays_dropped_total counter\n"
      << "edgepier_control_replays_dropped_total " << messages_replayed << "\n"
      << "# HELP edgepier_index_entries Entries in the replicated index.\n"
      << "# TYPE edgepier_index_entries gauge\n"
      << "edgepier_index_entries " << index_entries << "\n";
  return out.str();
}

}  // namespace ep::actors
