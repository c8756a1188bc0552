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
          // Blobs it announced it can serve now: being assembled, or recently completed.
          {"blobs_announced", m.blobs_size()}};
}

json pin_view_json(const crdt::PinView& pin, const site::SiteCore& core, Registry& registry) {
  json holders = json::array();
  if (registry.holds_image(pin.ref)) holders.push_back(core.self().name());
  for (const auto& [name, m] : core.membership().members()) {  // as announced in their heartbeats
    if (m.liveness != site::Liveness::alive) continue;
    const auto& holds = m.info.holds();
    if (std::find(holds.begin(), holds.end(), pin.ref) != holds.end()) holders.push_back(name);
  }
  json replicas = pin.replicas == 0 ? json("all") : json(pin.replicas);
  return {{"ref", pin.ref},
          {"replicas", replicas},
          {"pinned_by", pin.pinned_by},
          {"pinned_at_ms", pin.pinned_at.wall_ms},
          {"target", pin.replicas == 0 ? core.membership().live_peers().size() + 1 : pin.replicas},
          {"holders", holders}};
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
      conflicts.push_back({{"digest", c.digest}, {"updated_by", c.ts.node}, {"updated_at_ms", c.ts.wall_ms}});
    tags.push_back({{"namespace", k.ns},
                    {"repository", k.repo},
                    {"tag", k.tag},
                    {"digest", view.value.digest},
                    {"media_type", view.value.media_type},
                    {"updated_by", view.value.ts.node},
                    {"updated_at_ms", view.value.ts.wall_ms},
                    {"deleted", view.value.deleted()},
                    {"conflicts", conflicts}});
  }
  return json_text(json({{"tags", tags}}));
}

std::string pins_json(const site::SiteCore& core, Registry& registry) {
  json pins = json::array();
  for (const auto& pin : core.index().pins()) pins.push_back(pin_view_json(pin, core, registry));
  return json_text(json({{"pins", pins}}));
}

std::string pin_json(const site::SiteCore& core, Registry& registry, const std::string& ref) {
  for (const auto& pin : core.index().pins())
    if (pin.ref == ref) return json_text(json({{"pin", pin_view_json(pin, core, registry)}}));
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
      << "# HELP edgepier_index_entries Entries in the replicated index.\n"
      << "# TYPE edgepier_index_entries gauge\n"
      << "edgepier_index_entries " << index_entries << "\n";
  return out.str();
}

}  // namespace ep::actors
