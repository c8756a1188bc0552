#include "dataplane/replicator.h"

#include "base/log.h"

#include <algorithm>

#include "base/clock.h"
#include "dataplane/eviction_plan.h"
#include "site/chunk_plan.h"

namespace ep {


Replicator::Replicator(Registry& registry, BlobStore& blobs, Mirror& mirror, std::shared_ptr<site::IndexSnapshot> index,
                       std::shared_ptr<site::PeerDirectory> peers, std::string self_name)
    : registry_(registry), blobs_(blobs), mirror_(mirror), index_(std::move(index)), peers_(std::move(peers)),
      self_(std::move(self_name)), next_collection_(std::chrono::steady_clock::now() + GarbageCollector::kPeriod / 10) {}

bool Replicator::assigned(const crdt::PinView& pin, const std::string& self, std::vector<std::string> members) {
  if (pin.replicas == 0) return true;
  members.push_back(self);
  auto order = site::rendezvous_order(pin.ref, 0, std::move(members));
  auto end = order.begin() + std::min<size_t>(pin.replicas, order.size());
  return std::find(order.begin(), end, self) != end;
}

std::vector<ReplicationJob> Replicator::round() {
  std::vector<std::string> members;
  for (const auto& peer : peers_->live()) members.push_back(peer.name);
  const uint64_t now = wall_clock_ms();
  std::vector<ReplicationJob> jobs;
  for (const auto& pin : index_->pins()) {
    if (!assigned(pin, self_, members) || pin.lapsed(now, auto_pin_ttl_ms_)) continue;
    std::string repo(split_reference(pin.ref).first);
    const auto origin = index_->origin(repo);
    // A cache hint of a mirrored image never pushes storage over its budget
    // (it would be evicted again); pushed images are the site's only copies.
    const bool cache_hint = !pin.explicit_pin && !origin.ns.empty();
    if (cache_hint && over_budget_now()) continue;
    auto blobs = registry_.image_blobs(pin.ref);  // the manifest arrives with the index
    if (!blobs) continue;
    for (const auto& digest : *blobs)
      if (!registry_.stat_blob(repo, digest.str())) jobs.push_back({repo, digest.str(), origin.ns, origin.repo, cache_hint});
  }
  return jobs;
}

FetchStart Replicator::start_fetch(const ReplicationJob& job, bool may_yield, std::function<void(bool ok)> done) {
  // The round is a snapshot: an earlier job or a client may have brought it.
  if (registry_.stat_blob(job.repo, job.digest)) return FetchStart::skipped;
  if (job.cache_hint && over_budget_now()) return FetchStart::skipped;
  // Prefetch yields to pulls: the uplink, the peers and this node's CPU go
  // to what a pod is waiting for.
  if (may_yield && mirror_.client_fetch_running()) return FetchStart::yielded;
  Upstream* upstream = job.ns.empty() ? nullptr : mirror_.upstream_for(job.ns);
  auto source = upstream ? mirror_.blob(*upstream, job.origin_repo, job.digest, false)
                         : mirror_.blob_from_peers(job.repo, job.digest, /*background=*/true);
  if (!source || !source->inflight) return FetchStart::skipped;  // failed (next round), or stored already
  source->inflight->when_done([done = std::move(done), inflight = source->inflight.get()] { done(!inflight->failed()); });
  return FetchStart::started;
}

void Replicator::note_fetched(bool ok) {
  if (ok) ++replicated_;
}

void Replicator::housekeeping() {
  enforce_budget();
  if (collector_ && std::chrono::steady_clock::now() >= next_collection_) {
    if (auto report = collector_->collect(/*remove=*/true); !report)
      log_warning("gc", "garbage collection failed: " + report.status().message);
    next_collection_ = std::chrono::steady_clock::now() + GarbageCollector::kPeriod;
  }
}

bool Replicator::over_budget_now() const { return budget_ > 0 && blobs_.used_bytes() >= budget_; }

bool Replicator::mirrored(const crdt::PinView& pin) const {
  return !index_->origin(std::string(split_reference(pin.ref).first)).ns.empty();
}

uint64_t Replicator::make_room(uint64_t bytes) {
  std::lock_guard lock(evict_mu_);
  // A full disk with nothing evictable: each refused write would plan again
  // (a scan of every manifest and blob); once a second is enough.
  if (nothing_to_evict_at_ms_ && steady_clock_ms() - nothing_to_evict_at_ms_ < 1000) return 0;
  const uint64_t used = blobs_.used_bytes();
  // A budget of what is stored less what is wanted (0 would mean "unlimited").
  const uint64_t freed = evict(plan(used, used > bytes ? std::max<uint64_t>(1, used - bytes) : 1));
  nothing_to_evict_at_ms_ = freed > 0 ? 0 : steady_clock_ms();
  // Nothing to evict is not news: the blob store says once that the disk is full.
  if (freed > 0)
    log_info("storage", "the data dir is short of " + std::to_string(bytes) + " bytes: evicted " +
                            std::to_string(freed) + " bytes of cached blobs" +
                            (freed < bytes ? " (all that may be evicted)" : ""));
  return freed;
}

void Replicator::enforce_budget() {
  std::lock_guard lock(evict_mu_);
  const uint64_t budget = budget_;
  const uint64_t used = blobs_.used_bytes();
  if (budget == 0 || (used <= budget && !over_budget_)) return;
  const auto planned = plan(used, budget);
  evict(planned);
  kept_bytes_ = planned.kept_bytes;
  if (planned.over_budget != over_budget_.exchange(planned.over_budget))  // said once per change, not per round
    log_warning("storage", planned.over_budget
                               ? "explicit pins and pinned pushed images hold " + std::to_string(planned.kept_bytes) +
                                     " bytes, more than storage-budget " + std::to_string(budget) +
                                     "; they are kept (epctl pins; remove a pin or raise the budget)"
                               : "blob storage is within storage-budget again");
}

EvictionPlan Replicator::plan(uint64_t used, uint64_t budget) {
  std::vector<PinnedImage> pins;
  for (auto& pin : index_->pins()) {
    PinnedImage image{pin, {}, mirrored(pin)};
    if (auto blobs = registry_.image_blobs(pin.ref))
      for (const auto& d : *blobs) image.blobs.push_back(d.str());
    pins.push_back(std::move(image));
  }
  auto access = registry_.blob_access();
  auto referenced = registry_.referenced_blobs();
  if (!referenced) return {};  // cannot tell an upload in progress from a cached blob: evict nothing
  std::vector<StoredBlob> stored;
  for (auto& [digest, size] : blobs_.list()) {
    auto it = access.find(digest.str());
    stored.push_back({digest.str(), size, it == access.end() ? 0 : it->second, referenced->count(digest.str()) > 0});
  }
  return plan_eviction(stored, pins, used, budget);
}

uint64_t Replicator::evict(const EvictionPlan& plan) {
  uint64_t freed = 0;
  // Removing a blob another thread is sending is safe: the open file stays
  // readable until that send ends. Partial blobs are not listed: a fetch
  // in progress is never evicted.
  for (const auto& digest : plan.evict) {
    auto d = Digest::parse(digest);
    auto size = d ? blobs_.stat(*d) : Result<uint64_t>(Errc::blob_unknown, digest);
    if (size && blobs_.remove(*d)) {
      ++evicted_;
      freed += *size;
    }
  }
  return freed;
}

}  // namespace ep
