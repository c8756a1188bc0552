#include "site/replay_guard.h"

namespace ep::site {

bool ReplayGuard::first_sight(std::string_view id, uint64_t sent_ms, uint64_t now_ms) {
  forget_expired(now_ms);
  std::string key(id);
  if (seen_.count(key)) {
    ++dropped_;
    return false;
  }
  if (seen_.size() >= capacity_) forget_oldest();
  seen_.insert(key);
  by_expiry_.emplace(sent_ms + window_ms_, std::move(key));
  return true;
}

void ReplayGuard::forget_expired(uint64_t now_ms) {
  while (!by_expiry_.empty() && by_expiry_.top().first < now_ms) forget_oldest();
}

void ReplayGuard::forget_oldest() {
  seen_.erase(by_expiry_.top().second);
  by_expiry_.pop();
}

}  // namespace ep::site
