// Hybrid logical clock (Kulkarni et al.): timestamps that follow wall time
// but never go backwards and order causally related events.
//
// Pure: wall time is passed in, so the simulation controls it. One HlcClock
// per node, used from the index actor only (not thread-safe).
#pragma once

#include <cstdint>
#include <string>
#include <tuple>

namespace ep::crdt {

struct Hlc {
  uint64_t wall_ms = 0;
  uint32_t logical = 0;
  std::string node;  // tiebreak: equal clocks on two nodes still order

  bool operator<(const Hlc& o) const {
    return std::tie(wall_ms, logical, node) < std::tie(o.wall_ms, o.logical, o.node);
  }
  bool operator==(const Hlc& o) const {
    return wall_ms == o.wall_ms && logical == o.logical && node == o.node;
  }
  bool operator<=(const Hlc& o) const { return !(o < *this); }
  bool zero() const { return wall_ms == 0 && logical == 0 && node.empty(); }
};

class HlcClock {
 public:
  explicit HlcClock(std::string node) : node_(std::move(node)) {}
  // A timestamp for a local event at wall time `wall_ms`.
  Hlc now(uint64_t wall_ms);
  // Advances past a timestamp received from a peer.
  void observe(const Hlc& remote, uint64_t wall_ms);

 private:
  std::string node_;
  uint64_t wall_ = 0;
  uint32_t logical_ = 0;
};

}  // namespace ep::crdt
