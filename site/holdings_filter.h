// Holdings summaries: which blobs a member may hold completely, so a node
// that lacks a blob asks only the members that may have it, and answers a
// digest nobody holds without asking anyone.
//
//  - HoldingsFilter: a Bloom filter over blob keys (holdings_key). A plain
//    value, copied on change: readers (the transfer threads, through
//    PeerDirectory) keep a shared_ptr<const> to the copy they saw.
//  - HoldingsSummary: this node's side. The set of blobs held here and the
//    filter announced for it, versioned. Every change gives the update to
//    send to all live peers: the blobs added since the previous version (a
//    delta, O(1) bytes per change and peer), or the whole filter when it is
//    rebuilt (grown past its capacity, or many removals to drop).
//  - PeerHoldings: the filters the peers announced. A delta whose base is
//    not the version held (a lost message, a peer that restarted) drops the
//    peer's filter, which then counts as unknown (asked, like a peer that
//    announced nothing), until the whole filter it is asked for arrives.
//
// Invariant, on both sides: a blob the owner holds is in its filter from
// the update its commit produced on; filters have false positives (about 1%
// at capacity, more for removed blobs until a rebuild), never false
// negatives. Owned by the site actor via SiteCore; no locking.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "proto/edgepier.pb.h"

namespace ep {
namespace wire = ::edgepier::wire;
}

namespace ep::site {

// The 64 bits of a digest ("algorithm:hex") the filters use: its first 16
// hex digits (a cryptographic digest is uniform already). A crafted digest
// that collides only costs the probe every lookup paid before summaries.
uint64_t holdings_key(std::string_view digest);

class HoldingsFilter {
 public:
  static constexpr uint32_t kHashes = 7;
  static constexpr uint32_t kBitsPerBlob = 10;  // ~1% false positives at capacity
  // Well under the cluster gate's 16 MiB message bound: past ~3.3M blobs a
  // filter stops growing and claims more (a false positive costs one probe).
  static constexpr size_t kMaxBytes = 4 << 20;

  HoldingsFilter() = default;  // holds nothing
  static HoldingsFilter sized_for(size_t capacity);
  // nullopt for a malformed announcement.
  static std::optional<HoldingsFilter> from_wire(std::string bits, uint32_t hashes);

  void add(uint64_t key);
  bool may_hold(uint64_t key) const;
  size_t capacity() const { return bits_.size() * 8 / kBitsPerBlob; }
  const std::string& bits() const { return bits_; }
  uint32_t hashes() const { return hashes_; }

 private:
  uint64_t bit(uint64_t key, uint32_t i) const;

  std::string bits_;
  uint32_t hashes_ = kHashes;
};

class HoldingsSummary {
 public:
  HoldingsSummary() { rebuild(); }  // holds nothing
  // Everything held here at start (replaces what was known).
  void reset(const std::vector<uint64_t>& keys);
  // The update for the peers, or nullopt when nothing they know changed.
  std::optional<wire::HoldingsUpdate> stored(uint64_t key);
  std::optional<wire::HoldingsUpdate> removed(uint64_t key);
  // The whole filter at the current version (for a peer that joined, came
  // back or asked).
  wire::HoldingsUpdate whole() const;
  uint64_t version() const { return version_; }
  size_t size() const { return held_.size(); }

 private:
  void rebuild();

  std::unordered_set<uint64_t> held_;
  HoldingsFilter filter_;
  uint64_t version_ = 1;  // never 0: a delta's base_version 0 would read as a whole filter
  size_t removed_since_rebuild_ = 0;
};

class PeerHoldings {
 public:
  // want_whole: the peer's filter was dropped (changed) and the whole one
  // should be asked for.
  enum class Outcome { changed, want_whole, unchanged };
  Outcome apply(const std::string& peer, const wire::HoldingsUpdate& update);
  void forget(const std::string& peer) { peers_.erase(peer); }
  // nullptr: unknown (nothing announced, or a gap): the peer may hold anything.
  std::shared_ptr<const HoldingsFilter> filter(const std::string& peer) const;

 private:
  struct Known {
    uint64_t version = 0;
    std::shared_ptr<const HoldingsFilter> filter;
    bool asked = false;  // the whole filter was asked for after a gap
  };
  std::map<std::string, Known> peers_;
};

}  // namespace ep::site
