// Eviction planning for storage-budget: which stored blobs go, in which
// order, when blob storage exceeds the budget. Pure (no I/O, no clock);
// the replicator gathers the facts and carries the plan out.
//
// Order: first blobs no pin holds, least recently read first; then blobs
// only auto-pins of mirrored images hold (lapsed or not), the pin's oldest
// last use first. Kept, whatever the budget: blobs an explicit pin holds,
// and blobs of pinned pushed images (no upstream can give them back; the
// site may hold the only copy). When kept blobs alone exceed the budget the
// plan says so (over_budget) instead. Blobs no manifest lists are never
// planned: they are an upload in progress (its manifest not yet put) or
// garbage, which the collector removes after gc-grace.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "crdt/index.h"

namespace ep {

struct StoredBlob {
  std::string digest;
  uint64_t size = 0;
  uint64_t last_read_ms = 0;  // 0: not read since the node started
  bool referenced = true;     // some manifest lists it
};

struct PinnedImage {
  crdt::PinView pin;
  std::vector<std::string> blobs;  // digests its manifests list
  bool mirrored = false;           // an upstream can give its blobs back
};

struct EvictionPlan {
  std::vector<std::string> evict;  // in order; stop once under the budget
  uint64_t kept_bytes = 0;         // stored bytes that are never evicted
  bool over_budget = false;        // even after every eviction, still above
};

EvictionPlan plan_eviction(const std::vector<StoredBlob>& stored, const std::vector<PinnedImage>& pins,
                           uint64_t used_bytes, uint64_t budget_bytes);

}  // namespace ep
