// IndexSnapshot: what the replicator needs from the site index (pins, and
// where each repository's images come from), published by the site actor:
// origins as tags of mirrored repositories appear, the pins at most once a
// tick after they changed (a copy of every pin per tag write would make
// each write cost the size of the index). Thread-safe copies.
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
  void set_pins(std::vector<crdt::PinView> pins) {
    std::lock_guard lock(mu_);
    pins_ = std::move(pins);
  }
  // Adds origins of mirrored repositories (pushed ones map to themselves).
  void add_origins(const std::map<std::string, Origin>& origins) {
    std::lock_guard lock(mu_);
    for (const auto& [repo, origin] : origins) origins_[repo] = origin;
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
