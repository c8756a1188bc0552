// ReplayGuard: remembers which sealed control envelopes were already applied,
// so that a captured envelope sent again within its validity window is
// dropped instead of applied a second time.
//
// Owned by the site actor (one per node, touched only in its handlers); no
// locking. An envelope is identified by its Ed25519 signature, which covers
// its whole content: re-sealing the same envelope with a new nonce does not
// make it new. Only envelopes that verified are remembered, so outsiders
// cannot fill the guard. Invariants: every remembered id expires when its
// envelope would fail Sealer's age check anyway (sent_ms + window), and at
// most `capacity` ids are kept (past it, the ones closest to expiry go).
#pragma once

#include <cstdint>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

namespace ep::site {

class ReplayGuard {
 public:
  ReplayGuard(uint64_t window_ms, size_t capacity) : window_ms_(window_ms), capacity_(capacity) {}

  // True the first time `id` is seen; false for a replay within the window.
  bool first_sight(std::string_view id, uint64_t sent_ms, uint64_t now_ms);

  size_t size() const { return seen_.size(); }
  uint64_t replays_dropped() const { return dropped_; }

 private:
  void forget_expired(uint64_t now_ms);
  void forget_oldest();

  using Entry = std::pair<uint64_t, std::string>;  // expiry, id
  uint64_t window_ms_;
  size_t capacity_;
  std::unordered_set<std::string> seen_;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> by_expiry_;
  uint64_t dropped_ = 0;
};

}  // namespace ep::site
