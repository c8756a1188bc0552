// Replicator: the work of making this node hold the pinned images the
// replication factor assigns to it (all members for "all", else the first N
// members in rendezvous order of the reference), and of keeping storage
// within its budget. Lapsed auto-pins are not fetched, nor auto-pinned
// mirrored images while storage is over its budget. The budget is kept by
// evicting blobs in the order of dataplane/eviction_plan.h (unpinned, then
// auto-pinned; never explicit).
//
// Ownership: a plain class with no thread. The replicator actor
// (actors/replicator_actor.h) drives it through ReplicationWork, one call at
// a time, each on the node's blocking pool (they block on the disk, the
// uplink or peers); make_room is called by the blob store's room maker from
// any thread. Missing blobs are fetched one at a time, in the background,
// from peers (or, for mirrored images, through the site's chunked fetch),
// each only once no client pull here is fetching (prefetch yields to pulls).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dataplane/eviction_plan.h"
#include "dataplane/garbage.h"
#include "dataplane/mirror.h"
#include "storage/blob_store.h"
#include "registry/registry.h"
#include "site/index_snapshot.h"
#include "site/peer_directory.h"

namespace ep {

// One blob a replication round fetches.
struct ReplicationJob {
  std::string repo;         // the repository here
  std::string digest;
  std::string ns;           // the upstream namespace of a mirrored image; "" = from peers
  std::string origin_repo;  // the repository upstream
  bool cache_hint = false;  // an auto-pinned mirrored image: not fetched while storage is over its budget
};

enum class FetchStart { started, yielded, skipped };

// What the replicator actor asks of the replicator. Every call may block and
// runs on the blocking pool; the actor makes one call at a time.
class ReplicationWork {
 public:
  virtual ~ReplicationWork() = default;
  // The blobs this node should fetch now, in the pins' order.
  virtual std::vector<ReplicationJob> round() = 0;
  // Starts fetching the job's blob. `yielded` (only with `may_yield`): a
  // client pull here is fetching, ask again later. `skipped`: not needed any
  // more, or it failed (the next round asks again). `started`: `done(ok)` is
  // called once, from any thread, when the fetch ended.
  virtual FetchStart start_fetch(const ReplicationJob& job, bool may_yield, std::function<void(bool ok)> done) = 0;
  // A started fetch ended.
  virtual void note_fetched(bool ok) = 0;
  // After each round: the storage budget, and garbage collection when due.
  virtual void housekeeping() = 0;
};

class Replicator : public ReplicationWork {
 public:
  Replicator(Registry& registry, BlobStore& blobs, Mirror& mirror, std::shared_ptr<site::IndexSnapshot> index,
             std::shared_ptr<site::PeerDirectory> peers, std::string self_name);

  std::vector<ReplicationJob> round() override;
  FetchStart start_fetch(const ReplicationJob& job, bool may_yield, std::function<void(bool ok)> done) override;
  void note_fetched(bool ok) override;
  void housekeeping() override;
  // Keeps blob storage within `bytes` (0: unlimited); evicted content can be
  // fetched again from the site or its upstream.
  void set_storage_budget(uint64_t bytes) { budget_ = bytes; }
  void set_auto_pin_ttl(uint64_t ms) { auto_pin_ttl_ms_ = ms; }
  // The data dir is short of `bytes`: evicts what storage-budget would
  // evict, in its order, until `bytes` are freed or nothing more may go.
  // Returns the bytes freed. Blocks on the disk; any thread (the blob
  // store's room maker, see storage/space_guard.h).
  uint64_t make_room(uint64_t bytes);
  // Runs garbage collection in housekeeping() every GarbageCollector::kPeriod
  // (the first a tenth of that after the replicator is made). Set before the actor starts.
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
  void enforce_budget();
  bool over_budget_now() const;
  EvictionPlan plan(uint64_t used, uint64_t budget);
  uint64_t evict(const EvictionPlan& plan);  // returns the bytes freed
  bool mirrored(const crdt::PinView& pin) const;  // an upstream can give its blobs back

  Registry& registry_;
  BlobStore& blobs_;
  Mirror& mirror_;
  std::shared_ptr<site::IndexSnapshot> index_;
  std::shared_ptr<site::PeerDirectory> peers_;
  std::string self_;
  GarbageCollector* collector_ = nullptr;
  std::chrono::steady_clock::time_point next_collection_;  // only housekeeping() uses it
  std::mutex evict_mu_;  // one eviction at a time: the budget's or a room maker's
  uint64_t nothing_to_evict_at_ms_ = 0;  // under evict_mu_: when make_room last found nothing
  std::atomic<uint64_t> replicated_{0}, evicted_{0}, budget_{0}, kept_bytes_{0};
  std::atomic<uint64_t> auto_pin_ttl_ms_{7ull * 24 * 3600 * 1000};
  std::atomic<bool> over_budget_{false};
};

}  // namespace ep
