// IndexSnapshot: what the replicator needs from the site index (pins, and
// where each repository's images come from), published by the site actor
// after every index change. Thread-safe copies.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "crdt/index.h"

namespace ep::site {

class IndexSnapshot {
 public:
  struct Origin {
    std::string ns;    // upstream namespace, "" for pushed images
    std::string repo;  // repository as that namespace knows it
  };
  void update(std::vector<crdt::PinView> pins, std::map<std::string, Origin> origins) {
    std::lock_guard lock(mu_);
    pins_ = std::move(pins);
    origins_ = std::move(origins);
  }
  std::vector<crdt::PinView> pins() const {
    std::lock_guard lock(mu_);
    return pins_;
  }
  // Origin of a local repository name (pushed repositories map to themselves).
  Origin origin(const std::string& local_repo) const {
    std::lock_guard lock(mu_);
    auto it = origins_.find(local_repo);
    return it == origins_.end() ? Origin{"", local_repo} : it->second;
  }

 private:
  mutable std::mutex mu_;
  std::vector<crdt::PinView> pins_;
  std::map<std::string, Origin> origins_;  // local repository -> origin
};

}  // namespace ep::site
