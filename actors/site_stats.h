// SiteStats: counters the site actor publishes for /metrics (read by HTTP
// threads without messaging the actor). Relaxed atomics.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace ep::actors {

struct SiteStats {
  std::atomic<uint64_t> alive{0}, suspect{0}, dead{0}, left{0};
  std::atomic<uint64_t> anti_entropy_rounds{0}, repairs{0};
  std::atomic<uint64_t> messages_sent{0}, messages_received{0}, messages_rejected{0}, messages_replayed{0};
  std::atomic<uint64_t> index_entries{0};
  std::atomic<bool> joined{false};
  std::string render() const;
};

}  // namespace ep::actors
