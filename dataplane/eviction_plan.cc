#include "dataplane/eviction_plan.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

namespace ep {

EvictionPlan plan_eviction(const std::vector<StoredBlob>& stored, const std::vector<PinnedImage>& pins,
                           uint64_t used, uint64_t budget) {
  EvictionPlan plan;
  std::set<std::string> kept;
  std::map<std::string, uint64_t> auto_use;  // blob -> newest last use of the auto-pins holding it
  for (const auto& image : pins)
    for (const auto& digest : image.blobs) {
      if (image.pin.explicit_pin || !image.mirrored) {
        kept.insert(digest);
      } else {
        auto& use = auto_use[digest];
        use = std::max(use, image.pin.last_used_ms);
      }
    }
  // (class, use, read, digest): class 0 unpinned, 1 auto-pinned only.
  std::vector<std::tuple<int, uint64_t, uint64_t, const StoredBlob*>> candidates;
  for (const auto& blob : stored) {
    if (!blob.referenced) continue;
    if (kept.count(blob.digest)) {
      plan.kept_bytes += blob.size;
      continue;
    }
    auto it = auto_use.find(blob.digest);
    candidates.emplace_back(it == auto_use.end() ? 0 : 1, it == auto_use.end() ? 0 : it->second, blob.last_read_ms,
                            &blob);
  }
  std::sort(candidates.begin(), candidates.end(), [](const auto& a, const auto& b) {
    return std::tie(std::get<0>(a), std::get<1>(a), std::get<2>(a), std::get<3>(a)->digest) <
           std::tie(std::get<0>(b), std::get<1>(b), std::get<2>(b), std::get<3>(b)->digest);
  });
  for (const auto& candidate : candidates) {
    if (budget == 0 || used <= budget) break;
    const StoredBlob* blob = std::get<3>(candidate);
    plan.evict.push_back(blob->digest);
    used -= std::min(used, blob->size);
  }
  plan.over_budget = budget > 0 && used > budget;
  return plan;
}

}  // namespace ep
