// The site actor: the thin CAF shell around site::SiteCore.
//
// Publishes itself on cluster-address; connects to seeds and members through
// the middleman (never blocking: connect requests are asynchronous); seals
// and opens every control message (site/security.h); monitors each peer's
// actor so a lost connection is reported at once (CAF 0.17 has no node-down
// message; the middleman's heartbeat and connection timeout bound
// detection); persists changed index entries in RocksDB and mirrors tag
// changes into the registry's local view, so tag reads never wait on the
// network. Admin requests return JSON strings.
#pragma once

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "actors/site_stats.h"
#include "registry/registry.h"
#include "site/core.h"
#include "site/index_snapshot.h"
#include "site/peer_directory.h"
#include "site/security.h"
#include "storage/kv_store.h"

namespace ep::actors {

struct SiteActorConfig {
  wire::Member self;  // name, addresses, incarnation, identity key
  std::vector<std::string> seeds;
  site::CoreOptions core;
  uint32_t default_replicas = 0;  // for pins added without a factor (0 = all)
  bool auto_pin = true;           // pin every image tagged here (pulled or pushed)
  uint64_t chunk_size = 4 << 20;  // what one bit of an announced chunk bitmap stands for
  uint64_t auto_pin_ttl_ms = 7 * 24 * 3600 * 1000ull;  // an auto-pin not pulled this long lapses
};

struct SiteDeps {
  KvStore& kv;
  Registry& registry;
  std::shared_ptr<const site::Sealer> sealer;
  std::shared_ptr<SiteStats> stats;
  std::shared_ptr<site::PeerDirectory> peers;  // live peers' data addresses, for transfers
  std::shared_ptr<site::IndexSnapshot> index;  // pins and origins, for the replicator
  // What this node can serve to peers now (partial and recent blobs), announced
  // with every heartbeat; may be empty.
  std::function<std::vector<wire::BlobHolding>()> holdings;
  std::function<uint64_t()> holdings_version;  // changes when holdings() would say more
  // Every blob held here at start (site::holdings_key); each one stored or
  // removed later is sent as (blob_atom, key, present), see blob_listener.
  std::vector<uint64_t> held_blobs;
};

// For BlobStore::set_listener: tells the site actor of every blob stored or
// removed here, from the thread that stored it, before the store returns
// (so before any tag naming it reaches the actor).
std::function<void(const Digest&, bool present)> blob_listener(caf::actor site);

// Spawns the actor, publishes it on the cluster port and starts joining.
// Returns the actor and the port it was published on.
Result<std::pair<caf::actor, uint16_t>> start_site_actor(caf::actor_system& system, SiteActorConfig config, SiteDeps deps,
                                    const std::string& cluster_host, uint16_t cluster_port);

// Forwards local tag changes from the registry to the site actor.
class SiteTagObserver : public TagObserver {
 public:
  explicit SiteTagObserver(caf::actor site) : site_(std::move(site)) {}
  void tag_written(const std::string& ns, const std::string& repo, const std::string& tag,
                   const StoredManifest& manifest, const std::string& writer) override;
  void tag_deleted(const std::string& ns, const std::string& repo, const std::string& tag,
                   const std::string& writer) override;
  void image_pulled(const std::string& repo, const std::string& reference) override;

 private:
  caf::actor site_;
};

}  // namespace ep::actors
