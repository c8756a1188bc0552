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
class Replicator;
class BlobStore;
namespace actors {
struct SiteStats;
}
namespace transfer {
struct PeerTraffic;
}
}  // namespace ep

namespace ep::http {

std::string render_node_metrics(const actors::SiteStats& site, const transfer::PeerTraffic& traffic, Mirror& mirror);
// Blob storage against storage-budget: used, budget, bytes explicit pins
// hold, whether they alone exceed it, blobs evicted.
std::string render_storage_metrics(const Replicator& replicator, const BlobStore& blobs);

}  // namespace ep::http
