#include "http/node_metrics.h"

#include "actors/site_stats.h"
#include "dataplane/mirror.h"
#include "dataplane/replicator.h"
#include "http/metrics.h"
#include "transfer/chunk_service.h"

namespace ep::http {

namespace {

std::string counter(const char* name, const char* help) {
  return std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n";
}

std::string per_peer(const std::map<std::string, Mirror::PeerStats>& peers) {
  std::string out = counter("edgepier_peer_chunk_bytes_total", "Chunk bytes exchanged with each member.");
  for (const auto& [name, p] : peers) {
    const auto peer = prometheus_label(name);
    out += "edgepier_peer_chunk_bytes_total{peer=\"" + peer + "\",direction=\"from\"} " + std::to_string(p.bytes_from) + "\n";
    out += "edgepier_peer_chunk_bytes_total{peer=\"" + peer + "\",direction=\"to\"} " + std::to_string(p.bytes_to) + "\n";
  }
  out += counter("edgepier_peer_bad_chunks_total", "Chunks from a member that failed verification.");
  for (const auto& [name, p] : peers)
    out += "edgepier_peer_bad_chunks_total{peer=\"" + prometheus_label(name) + "\"} " + std::to_string(p.bad_chunks) + "\n";
  return out;
}

std::string holder_lookups(const Mirror::HolderLookups& lookups) {
  return counter("edgepier_holder_lookups_total",
                 "Lookups of a blob missing here: peers asked, or none asked as no holdings summary may contain it.") +
         "edgepier_holder_lookups_total{peers=\"asked\"} " + std::to_string(lookups.asked) + "\n" +
         "edgepier_holder_lookups_total{peers=\"none_may_hold\"} " + std::to_string(lookups.none_may_hold) + "\n";
}

}  // namespace

std::string render_node_metrics(const actors::SiteStats& site, const transfer::PeerTraffic& traffic, Mirror& mirror) {
  return site.render() + counter("edgepier_peer_bytes_total", "Chunk bytes exchanged with peers.") +
         "edgepier_peer_bytes_total{direction=\"from_peers\"} " + std::to_string(traffic.bytes_fetched) + "\n" +
         "edgepier_peer_bytes_total{direction=\"to_peers\"} " + std::to_string(traffic.bytes_served) + "\n" +
         counter("edgepier_upstream_bytes_total", "Blob bytes fetched from upstream registries.") +
         "edgepier_upstream_bytes_total " + std::to_string(mirror.bytes_from_upstream()) + "\n" +
         counter("edgepier_peer_handshakes_refused_total", "Peer streams refused for lacking the site key.") +
         "edgepier_peer_handshakes_refused_total " + std::to_string(traffic.handshakes_refused) + "\n" +
         holder_lookups(mirror.holder_lookups()) + per_peer(mirror.peer_stats());
}

std::string render_storage_metrics(const Replicator& replicator, const BlobStore& blobs) {
  const uint64_t used = blobs.used_bytes();
  auto gauge = [](const char* name, const char* help, uint64_t value) {
    return std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n" + name + " " +
           std::to_string(value) + "\n";
  };
  return gauge("edgepier_storage_used_bytes", "Bytes of complete blobs stored.", used) +
         gauge("edgepier_storage_budget_bytes", "storage-budget (0 = unlimited).", replicator.storage_budget()) +
         gauge("edgepier_storage_kept_bytes", "Stored bytes never evicted (explicit pins, pinned pushed images).",
               replicator.kept_bytes()) +
         gauge("edgepier_storage_over_budget", "1 when what is never evicted alone exceeds storage-budget.",
               replicator.over_budget() ? 1 : 0) +
         gauge("edgepier_storage_free_bytes", "Free bytes in the data dir's file system.", blobs.free_bytes()) +
         gauge("edgepier_storage_full", "1 while free space is below min-free-space (writes refused).",
               blobs.full() ? 1 : 0) +
         counter("edgepier_storage_evicted_blobs_total", "Blobs evicted to keep storage-budget.") +
         "edgepier_storage_evicted_blobs_total " + std::to_string(replicator.blobs_evicted()) + "\n" +
         counter("edgepier_replicated_blobs_total", "Blobs of pinned images fetched in the background.") +
         "edgepier_replicated_blobs_total " + std::to_string(replicator.blobs_replicated()) + "\n";
}

}  // namespace ep::http
