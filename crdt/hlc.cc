#include "crdt/hlc.h"

#include <algorithm>

namespace ep::crdt {

Hlc HlcClock::now(uint64_t wall_ms) {
  if (wall_ms > wall_) {
    wall_ = wall_ms;
    logical_ = 0;
  } else {
    ++logical_;
  }
  return Hlc{wall_, logical_, node_};
}

void HlcClock::observe(const Hlc& remote, uint64_t wall_ms) {
  uint64_t next = std::max({wall_, remote.wall_ms, wall_ms});
  if (next == wall_ && next == remote.wall_ms)
    logical_ = std::max(logical_, remote.logical) + 1;
  else if (next == wall_)
    ++logical_;
  else if (next == remote.wall_ms)
    logical_ = remote.logical + 1;
  else
    logical_ = 0;
  wall_ = next;
}

}  // namespace ep::crdt
