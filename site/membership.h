// Membership: who is in the site and whether they are alive (pure logic).
//
// Liveness comes from hearing a member (any message) and from the transport
// reporting a lost connection: alive -> suspect (silent for suspect_after,
// or connection lost) -> dead (silent for dead_after) -> gone (dead or left
// for gone_after; its state is dropped). Silences are scaled by the
// member's announced heartbeat period. A member that restarts comes back
// with a higher incarnation under its stable name. Time is passed in.
// Owned by one thread (the membership actor or a simulated node).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "crdt/index.h"  // wire types

namespace ep::site {

enum class Liveness { alive, suspect, dead, left };
const char* liveness_name(Liveness l);

struct MembershipOptions {
  uint64_t suspect_after_ms = 3000;
  uint64_t dead_after_ms = 6000;
  uint64_t gone_after_ms = 24ull * 3600 * 1000;
  // The heartbeat period: what this node sends in a small site, and what
  // suspect_after and dead_after are meant for. A member announcing a longer
  // one (Member.heartbeat_ms) is allowed silences longer by the same factor.
  uint64_t heartbeat_ms = 1000;
};

struct MemberState {
  wire::Member info;
  Liveness liveness = Liveness::alive;
  uint64_t last_heard_ms = 0;
  bool heard_directly = false;  // false while only learned about through others
  uint64_t since_ms = 0;        // when the current liveness began
};

struct MembershipEvent {
  std::string name;
  Liveness liveness;
  bool gone = false;       // removed from the member list
  bool restarted = false;  // came back with a higher incarnation
  bool joined = false;     // first time heard from directly
};

class Membership {
 public:
  Membership(wire::Member self, MembershipOptions options) : self_(std::move(self)), options_(options) {}

  const wire::Member& self() const { return self_; }
  wire::Member& mutable_self() { return self_; }
  // A message from `info.name()` arrived (info may carry new addresses).
  std::optional<MembershipEvent> heard(const wire::Member& info, uint64_t now_ms);
  // Learned of a member through another node; adds it if unknown.
  bool learn(const wire::Member& info, uint64_t now_ms);
  std::optional<MembershipEvent> left(const std::string& name, uint64_t now_ms);
  std::optional<MembershipEvent> connection_lost(const std::string& name, uint64_t now_ms);
  std::vector<MembershipEvent> tick(uint64_t now_ms);

  std::vector<std::string> live_peers() const;  // alive or suspect
  size_t live_count() const { return live_count_; }  // live_peers().size(), kept current
  // Order-independent hash of the live members' names and self's, equal on
  // two nodes that know the same live set (FNV-1a per name, XOR-combined).
  uint64_t live_set_hash() const;
  uint64_t live_set_changed_ms() const { return live_set_changed_ms_; }
  const std::map<std::string, MemberState>& members() const { return members_; }
  const MemberState* find(const std::string& name) const;

 private:
  wire::Member self_;
  MembershipOptions options_;
  void set_liveness(MemberState& m, Liveness next, uint64_t now_ms);  // the only writer of liveness
  // `silence_ms` (meant for the reference period) for a member announcing `info.heartbeat_ms()`.
  uint64_t allowed_silence(const wire::Member& info, uint64_t silence_ms) const;

  std::map<std::string, MemberState> members_;  // peers only, not self
  size_t live_count_ = 0;                        // members alive or suspect
  uint64_t live_set_changed_ms_ = 0;             // last time a member became live or stopped being
};

}  // namespace ep::site
