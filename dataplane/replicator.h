// Replicator: makes this node hold the pinned images the replication factor
// assigns to it (all members for "all", else the first N members in
// rendezvous order of the reference), fetching missing blobs in the
// background from peers (or, for mirrored images, through the site's
// chunked fetch), one blob at a time, each only once no client pull here is
// fetching (prefetch yields to pulls: the uplink, the peers and this node's
// CPU go to what a pod is waiting for; at most a minute at a time).
// Lapsed auto-pins are not fetched, nor auto-pinned mirrored images while
// storage is over its budget. The budget is kept by evicting blobs in the order of
// dataplane/eviction_plan.h (unpinned, then auto-pinned; never explicit).
// Owns one thread; stopped by its destructor.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "dataplane/eviction_plan.h"
#include "dataplane/garbage.h"
#include "dataplane/mirror.h"
#include "storage/blob_store.h"
#include "registry/registry.h"
#include "site/index_snapshot.h"
#include "site/peer_directory.h"

namespace ep {

class Replicator {
 public:
  Replicator(Registry& registry, BlobStore& blobs, Mirror& mirror, std::shared_ptr<site::IndexSnapshot> index,
             std::shared_ptr<site::PeerDirectory> peers, std::string self_name);
  ~Replicator();
  void start();
  // Keeps blob storage within `bytes` (0: unlimited); evicted content can be
  // fetched again from the site or its upstream.
  void set_storage_budget(uint64_t bytes) { budget_ = bytes; }
  void set_auto_pin_ttl(uint64_t ms) { auto_pin_ttl_ms_ = ms; }
  // The data dir is short of `bytes`: evicts what storage-budget would
  // evict, in its order, until `bytes` are freed or nothing more may go.
  // Returns the bytes freed. Blocks on the disk; any thread (the blob
  // store's room maker, see storage/space_guard.h).
  uint64_t make_room(uint64_t bytes);
  // Runs garbage collection on this thread every GarbageCollector::kPeriod
  // (the first a minute after start). Set before start().
  void set_collector(GarbageCollector* collector) { collector_ = collector; }
  uint64_t storage_budget() const { return budget_; }
  uint64_t auto_pin_ttl_ms() const { return auto_pin_ttl_ms_; }
  uint64_t blobs_evicted() const { return evicted_; }
  // What is never evicted (explicit pins, pinned pushed images) alone is
  // more than the budget: the node keeps it and says so.
  bool over_budget() const { return over_budget_; }
  uint64_t kept_bytes() const { return kept_bytes_; }
  // Whether this node should hold a pinned image (pure; used by tests too).
  static bool assigned(const crdt::PinView& pin, const std::string& self, std::vector<std::string> members);
  uint64_t blobs_replicated() const { return replicated_; }

 private:
  void run();
  void replicate(const crdt::PinView& pin);
  void enforce_budget();
  EvictionPlan plan(uint64_t used, uint64_t budget);
  uint64_t evict(const EvictionPlan& plan);  // returns the bytes freed
  bool mirrored(const crdt::PinView& pin) const;  // an upstream can give its blobs back
  void yield_to_clients();

  Registry& registry_;
  BlobStore& blobs_;
  Mirror& mirror_;
  std::shared_ptr<site::IndexSnapshot> index_;
  std::shared_ptr<site::PeerDirectory> peers_;
  std::string self_;
  GarbageCollector* collector_ = nullptr;
  std::thread thread_;
  std::mutex mu_;
  std::mutex evict_mu_;  // one eviction at a time: the budget's or a room maker's
  uint64_t nothing_to_evict_at_ms_ = 0;  // under evict_mu_: when make_room last found nothing
  std::condition_variable cv_;
  bool stopping_ = false;
  std::atomic<uint64_t> replicated_{0}, evicted_{0}, budget_{0}, kept_bytes_{0};
  std::atomic<uint64_t> auto_pin_ttl_ms_{7ull * 24 * 3600 * 1000};
  std::atomic<bool> over_budget_{false};
};

}  // namespace ep
