#include "site/membership.h"

#include <algorithm>

namespace ep::site {

namespace {
bool is_live(Liveness l) { return l == Liveness::alive || l == Liveness::suspect; }
}  // namespace

const char* liveness_name(Liveness l) {
  switch (l) {
    case Liveness::alive: return "alive";
    case Liveness::suspect: return "suspect";
    case Liveness::dead: return "dead";
    case Liveness::left: return "left";
  }
  return "unknown";
}

std::optional<MembershipEvent> Membership::heard(const wire::Member& info, uint64_t now) {
  if (info.name() == self_.name() || info.name().empty()) return std::nullopt;
  auto [it, inserted] = members_.try_emplace(info.name());
  auto& m = it->second;
  if (inserted) m.liveness = Liveness::dead;  // not counted live until set below
  const bool first_contact = inserted || !m.heard_directly;
  bool restarted = !inserted && info.incarnation() > m.info.incarnation();
  bool stale = !inserted && info.incarnation() < m.info.incarnation();
  if (stale) return std::nullopt;  // a message from a previous life
  m.info = info;
  m.last_heard_ms = now;
  m.heard_directly = true;
  Liveness next = info.leaving() ? Liveness::left : Liveness::alive;
  if (inserted || restarted || m.liveness != next) {
    set_liveness(m, next, now);
    return MembershipEvent{info.name(), next, false, restarted, first_contact};
  }
  return std::nullopt;
}

bool Membership::learn(const wire::Member& info, uint64_t now) {
  if (info.name() == self_.name() || info.name().empty() || members_.count(info.name())) return false;
  auto& m = members_[info.name()];
  m.info = info;
  // Not heard from directly yet: suspect until it answers.
  m.liveness = Liveness::dead;  // not counted live until set below
  set_liveness(m, Liveness::suspect, now);
  m.last_heard_ms = now;
  return true;
}

std::optional<MembershipEvent> Membership::left(const std::string& name, uint64_t now) {
  auto it = members_.find(name);
  if (it == members_.end() || it->second.liveness == Liveness::left) return std::nullopt;
  set_liveness(it->second, Liveness::left, now);
  it->second.info.set_leaving(true);  // later messages of this incarnation keep it left
  return MembershipEvent{name, Liveness::left};
}

std::optional<MembershipEvent> Membership::connection_lost(const std::string& name, uint64_t now) {
  auto it = members_.find(name);
  if (it == members_.end() || it->second.liveness != Liveness::alive) return std::nullopt;
  set_liveness(it->second, Liveness::suspect, now);
  return MembershipEvent{name, Liveness::suspect};
}

std::vector<MembershipEvent> Membership::tick(uint64_t now) {
  std::vector<MembershipEvent> events;
  for (auto it = members_.begin(); it != members_.end();) {
    auto& m = it->second;
    uint64_t silent = now > m.last_heard_ms ? now - m.last_heard_ms : 0;
    if (m.liveness == Liveness::alive && silent >= allowed_silence(m.info, options_.suspect_after_ms)) {
      set_liveness(m, Liveness::suspect, now);
      events.push_back({it->first, Liveness::suspect});
    }
    if (m.liveness == Liveness::suspect && silent >= allowed_silence(m.info, options_.dead_after_ms)) {
      set_liveness(m, Liveness::dead, now);
      events.push_back({it->first, Liveness::dead});
    }
    bool finished = m.liveness == Liveness::dead || m.liveness == Liveness::left;
    if (finished && now - m.since_ms >= options_.gone_after_ms) {
      events.push_back({it->first, m.liveness, true});
      it = members_.erase(it);
      continue;
    }
    ++it;
  }
  return events;
}

std::vector<std::string> Membership::live_peers() const {
  std::vector<std::string> out;
  for (const auto& [name, m] : members_)
    if (is_live(m.liveness)) out.push_back(name);
  return out;
}

uint64_t Membership::allowed_silence(const wire::Member& info, uint64_t silence_ms) const {
  // Bounded: a member announcing an absurd period is still found out.
  constexpr uint64_t kLongestPeriodMs = 60000;
  const uint64_t period = std::max<uint64_t>(std::min<uint64_t>(info.heartbeat_ms(), kLongestPeriodMs), options_.heartbeat_ms);
  return options_.heartbeat_ms == 0 ? silence_ms : silence_ms * period / options_.heartbeat_ms;
}

void Membership::set_liveness(MemberState& m, Liveness next, uint64_t now) {
  if (is_live(next) != is_live(m.liveness)) live_set_changed_ms_ = now;
  live_count_ = live_count_ + is_live(next) - is_live(m.liveness);
  m.liveness = next;
  m.since_ms = now;
}

namespace {
uint64_t fnv1a(const std::string& s) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}
}  // namespace

uint64_t Membership::live_set_hash() const {
  uint64_t h = fnv1a(self_.name());
  for (const auto& [name, m] : members_)
    if (is_live(m.liveness)) h ^= fnv1a(name);
  return h;
}

const MemberState* Membership::find(const std::string& name) const {
  auto it = members_.find(name);
  return it == members_.end() ? nullptr : &it->second;
}

}  // namespace ep::site
