// TrafficHistory: the node's byte counters sampled every few seconds, the
// last `capacity` samples kept, for the status page's chart of uplink bytes
// against peer bytes ("how much uplink the site saved").
//
// Owned by the AdminApi. add() is called by a repeating timer on the I/O pool
// (http/admin_api, Node), samples() by admin requests on the admin pool; the
// mutex guards the ring and is held only to copy it. Invariant: samples are
// in time order, oldest first, at most `capacity` of them.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <vector>

namespace ep::http {

struct TrafficSample {
  uint64_t wall_ms = 0;
  uint64_t from_upstream = 0;  // counters since the node started, not rates
  uint64_t from_peers = 0;
  uint64_t to_clients = 0;
  uint64_t to_peers = 0;
};

class TrafficHistory {
 public:
  explicit TrafficHistory(size_t capacity) : capacity_(capacity) {}

  void add(const TrafficSample& sample) {
    std::lock_guard lock(mu_);
    samples_.push_back(sample);
    while (samples_.size() > capacity_) samples_.pop_front();
  }

  std::vector<TrafficSample> samples() const {
    std::lock_guard lock(mu_);
    return {samples_.begin(), samples_.end()};
  }

 private:
  const size_t capacity_;
  mutable std::mutex mu_;
  std::deque<TrafficSample> samples_;
};

}  // namespace ep::http
