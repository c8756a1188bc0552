// Metrics: lock-free counters for /metrics (Prometheus text format 0.0.4).
//
// Shared by all HTTP worker threads; every update is a relaxed atomic add.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "http/router.h"

namespace ep::http {

class Metrics {
 public:
  static constexpr size_t kRoutes = static_cast<size_t>(RouteKind::count_);
  static constexpr std::array<double, 12> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                      0.05,   0.1,   0.25,   0.5,   1.0,  5.0};

  void record(RouteKind route, unsigned status, double seconds);
  void add_bytes_in(uint64_t n) { bytes_in_.fetch_add(n, std::memory_order_relaxed); }
  void add_bytes_out(uint64_t n) { bytes_out_.fetch_add(n, std::memory_order_relaxed); }
  void connection_opened() { connections_.fetch_add(1, std::memory_order_relaxed); }
  void connection_closed() { connections_.fetch_sub(1, std::memory_order_relaxed); }
  int64_t open_connections() const { return connections_.load(std::memory_order_relaxed); }
  uint64_t bytes_in() const { return bytes_in_.load(std::memory_order_relaxed); }
  uint64_t bytes_out() const { return bytes_out_.load(std::memory_order_relaxed); }

  std::string render(uint64_t storage_used_bytes) const;

 private:
  std::array<std::array<std::atomic<uint64_t>, 600>, kRoutes> requests_{};
  std::array<std::array<std::atomic<uint64_t>, kBuckets.size() + 1>, kRoutes> latency_{};
  std::array<std::atomic<uint64_t>, kRoutes> latency_sum_us_{};
  std::atomic<uint64_t> bytes_in_{0}, bytes_out_{0};
  std::atomic<int64_t> connections_{0};
};

// A label value as the text format wants it: backslash, double quote and
// newline escaped, so a peer's name can never break the page.
std::string prometheus_label(std::string_view value);

}  // namespace ep::http
