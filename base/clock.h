// The two clocks the node reads, in milliseconds. Pure functions.
//  - wall_clock_ms: Unix time; what the site agrees on (HLC, last use, ages
//    shown to operators). May jump.
//  - steady_clock_ms: monotonic, since some fixed point; for intervals here.
#pragma once

#include <chrono>
#include <cstdint>

namespace ep {

inline uint64_t wall_clock_ms() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

inline uint64_t steady_clock_ms() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

}  // namespace ep
