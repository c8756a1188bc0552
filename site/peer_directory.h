// PeerDirectory: the live members' data-plane addresses, the blobs they
// announce and their holdings summaries, published by the site actor for the
// transfer threads (which must not message the actor on every chunk). A
// member that is no longer alive is simply absent, with its announcements.
// Thread-safe snapshot.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "site/holdings_filter.h"

namespace ep::site {

// A blob a member announced: `chunks` holds one bit per chunk present
// (LSB first); empty means the whole blob.
struct Holding {
  std::string digest;
  std::string chunks;
  bool has_chunk(uint64_t index) const {
    return chunks.empty() || (index / 8 < chunks.size() && (static_cast<unsigned char>(chunks[index / 8]) >> (index % 8)) & 1);
  }
};

struct PeerAddress {
  std::string name;
  std::string data_address;
  std::vector<Holding> holdings;
  // Every blob it holds completely may be in this (nullptr: unknown).
  std::shared_ptr<const HoldingsFilter> filter;
  bool may_hold(uint64_t key) const { return !filter || filter->may_hold(key); }  // key: holdings_key
  const Holding* holding(const std::string& digest) const {
    for (const auto& h : holdings)
      if (h.digest == digest) return &h;
    return nullptr;
  }
};

class PeerDirectory {
 public:
  void update(std::vector<PeerAddress> live) {
    std::lock_guard lock(mu_);
    live_ = std::move(live);
  }
  std::vector<PeerAddress> live() const {
    std::lock_guard lock(mu_);
    return live_;
  }
  void set_holdings(const std::string& name, std::shared_ptr<const HoldingsFilter> filter) {
    std::lock_guard lock(mu_);
    for (auto& peer : live_)
      if (peer.name == name) peer.filter = filter;
  }
  bool any_live() const {  // without copying what they hold
    std::lock_guard lock(mu_);
    return !live_.empty();
  }

 private:
  mutable std::mutex mu_;
  std::vector<PeerAddress> live_;  // peers only, not this node
};

}  // namespace ep::site
