// The node's data-plane and site counters as Prometheus text (appended to
// /metrics after the HTTP counters): site membership, peer and upstream
// bytes, refused handshakes, per-peer bytes and bad chunks.
//
// Pure rendering: reads counters that their owners keep (relaxed atomics,
// or the Mirror's own lock); owns nothing.
#pragma once

#include <string>

namespace ep {
class Mirror;
namespace actors {
struct SiteStats;
}
namespace transfer {
struct PeerTraffic;
}
}  // namespace ep

namespace ep::http {

std::string render_node_metrics(const actors::SiteStats& site, const transfer::PeerTraffic& traffic, Mirror& mirror);

}  // namespace ep::http
