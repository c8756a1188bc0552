// PeerDirectory: the live members' data-plane addresses, published by the
// site actor for the transfer threads (which must not message the actor on
// every chunk). Thread-safe snapshot.
#pragma once

#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace ep::site {

struct PeerAddress {
  std::string name;
  std::string data_address;
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

 private:
  mutable std::mutex mu_;
  std::vector<PeerAddress> live_;  // peers only, not this node
};

}  // namespace ep::site
