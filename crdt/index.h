// Index: the site's replicated CRDT state, pure code (no I/O, no clock).
//
//  - Tag map: (namespace, repository, tag) -> (manifest digest, media type).
//    Each key holds the set of writes not yet overwritten: a write carries
//    the timestamp of the winner its writer had seen ("observed"); writes
//    some other write observed are pruned. The value is the write with the
//    highest HLC timestamp (node name breaks ties); the others left are
//    concurrent writes, shown as conflicts. Deletes are tombstone writes.
//  - Pin set: observed-remove set, add wins over a concurrent remove. An add
//    is explicit (an operator's) or automatic (a first pull's cache hint).
//    Each pinned reference also has a last-use time, a max register: pulls
//    anywhere in the site raise it (coarsely, see use_pin), and an auto-pin
//    whose last use is older than the auto-pin TTL has lapsed.
// merge() is commutative, associative and idempotent (pruning only removes
// writes dominated by another write, and dominance is transitive), so any
// delivery order, duplication or repetition converges. Owned by one thread
// (the index actor, or a simulated node).
#pragma once

#include <array>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "crdt/hlc.h"
#include "proto/edgepier.pb.h"

namespace ep {
namespace wire = ::edgepier::wire;
}

namespace ep::crdt {

constexpr uint32_t kBuckets = 64;

struct TagKey {
  std::string ns, repo, tag;
  bool operator<(const TagKey& o) const { return std::tie(ns, repo, tag) < std::tie(o.ns, o.repo, o.tag); }
  bool operator==(const TagKey& o) const { return ns == o.ns && repo == o.repo && tag == o.tag; }
};

struct TagVersion {
  std::string digest;  // empty: deleted
  std::string media_type;
  Hlc ts;
  std::string writer;  // the registry user who wrote it ("" for the mirror)
  bool deleted() const { return digest.empty(); }
};

struct TagView {
  TagKey key;
  TagVersion value;
  std::vector<TagVersion> conflicts;
};

struct PinView {
  std::string ref;
  uint32_t replicas = 0;  // 0 = all
  std::string pinned_by;
  Hlc pinned_at;
  bool explicit_pin = false;  // some live add is explicit: it stays until removed
  uint64_t last_used_ms = 0;  // last pull anywhere, or the newest live add if later

  // An auto-pin not pulled for `ttl_ms`; it no longer holds its image.
  bool lapsed(uint64_t now_ms, uint64_t ttl_ms) const {
    return !explicit_pin && ttl_ms > 0 && now_ms > last_used_ms && now_ms - last_used_ms > ttl_ms;
  }
};

struct MergeResult {
  std::vector<TagKey> changed_tags;      // whose value changed
  std::vector<std::string> changed_keys;  // entries to persist (see encode_entry)
  bool pins_changed = false;
  bool changed() const { return !changed_keys.empty(); }
};

class Index {
 public:
  Index() = default;

  wire::IndexDelta put_tag(const TagKey& key, const std::string& digest, const std::string& media_type, const Hlc& ts,
                           const std::string& writer = "");
  wire::IndexDelta delete_tag(const TagKey& key, const Hlc& ts, const std::string& writer = "");
  wire::IndexDelta add_pin(const std::string& ref, uint32_t replicas, const Hlc& ts, bool automatic = false);
  // Records a pull of `ref` at `wall_ms` when it is pinned and its last use
  // is at least `step_ms` older (one write per pin and step, not per pull).
  std::optional<wire::IndexDelta> use_pin(const std::string& ref, uint64_t wall_ms, uint64_t step_ms);
  // nullopt when the reference is not pinned.
  std::optional<wire::IndexDelta> remove_pin(const std::string& ref);

  MergeResult merge(const wire::IndexDelta& delta);

  std::optional<TagVersion> tag(const TagKey& key) const;  // live value only
  // Live values with their conflicts, and deleted ones whose delete raced
  // with a concurrent write (so the lost write stays visible).
  std::vector<TagView> tags() const;
  std::vector<PinView> pins() const;
  // True when `ref` has a live add (explicit or automatic); O(log n).
  bool pinned(const std::string& ref) const;
  // The tag an entry key (see encode_entry) names; nullopt for a pin's key.
  std::optional<TagKey> tag_key_of(const std::string& entry_key) const;
  Hlc max_timestamp() const { return max_ts_; }

  // Anti-entropy: a digest per bucket of keys; the entries of some buckets.
  std::vector<std::string> bucket_digests() const;
  wire::IndexDelta entries(const std::vector<uint32_t>& buckets) const;
  // The same entries in pieces of at most `max_entries` keys each (a key's
  // writes stay together): a large repair or a newcomer's bootstrap travels
  // in bounded messages.
  std::vector<wire::IndexDelta> entry_pieces(const std::vector<uint32_t>& buckets, size_t max_entries) const;
  static std::vector<uint32_t> differing(const std::vector<std::string>& mine, const std::vector<std::string>& theirs);
  std::string state_digest() const;  // equal states have equal digests
  size_t size() const { return tags_.size() + pins_.size(); }

  // Persistence of single entries, keyed by entry key ("t..." / "p...").
  std::string encode_entry(const std::string& key) const;  // "" when the entry is gone
  bool load_entry(std::string_view encoded);
  std::vector<std::string> entry_keys() const;

  // Local change counter: every entry remembers when it last changed here.
  // Anti-entropy records, per peer, the counter at which the peer was seen
  // with an identical state; entries that changed at or before the minimum
  // over all members are known everywhere.
  uint64_t change_counter() const { return counter_; }
  // Drops tombstones and removed pins that every member is known to hold
  // (changed at or before `stable_counter`). Returns the entry keys to
  // re-persist or erase.
  std::vector<std::string> collect_garbage(uint64_t stable_counter);
  // For a node that was cut off from the site longer than members are kept:
  // forgets every write and pin operation from before `wall_ms` (the site
  // may have deleted those entries and collected the tombstones since; the
  // ones still live come back with the next repair). Newer, local writes stay.
  MergeResult forget_before(uint64_t wall_ms);

 private:
  struct TagState {
    std::vector<wire::TagWrite> writes;  // pruned; sorted by ts
    uint64_t changed = 0;
  };
  struct PinState {
    uint64_t changed = 0;
    std::map<std::string, wire::PinAdd> adds;        // by encoded id
    std::map<std::string, wire::PinRemove> removes;  // by encoded id
    uint64_t last_used_ms = 0;                        // max of every PinUse merged
  };
  bool merge_tag(const wire::TagWrite& write);
  bool merge_pin_add(const wire::PinAdd& add);
  bool merge_pin_remove(const wire::PinRemove& remove);
  bool merge_pin_use(const wire::PinUse& use);
  void append_pin(const PinState& state, const std::string& key, wire::IndexDelta& out) const;
  void touch(const std::string& key);
  void note(const Hlc& ts);

  std::map<std::string, TagState> tags_;
  std::map<std::string, PinState> pins_;
  mutable std::array<std::optional<std::string>, kBuckets> bucket_cache_;
  std::array<std::set<std::string>, kBuckets> bucket_keys_;  // entry keys per bucket
  Hlc max_ts_;
  uint64_t counter_ = 0;
};

// Conversions shared with the actors.
Hlc from_wire(const wire::Timestamp& ts);
void to_wire(const Hlc& hlc, wire::Timestamp* out);
std::string tag_entry_key(const TagKey& key);
std::string pin_entry_key(const std::string& ref);
uint32_t bucket_of(const std::string& entry_key);

}  // namespace ep::crdt
