// PendingWrites: the site's RocksDB and registry writes that have not landed
// yet (a full disk, a database in its error state), kept until they do.
//
// Owned by the store actor (touched only in its handlers); no CAF, no
// locking. Writes are merged by what they write, so a newer write of the
// same index key or tag replaces an older one that has not landed, and a
// retry can never put an older value over a newer one. Retried as a whole:
// every write is idempotent (index entries and tags are last-writer values,
// manifests are content-addressed). Bounded: past kMaxBytes the oldest
// half is dropped (and counted); those entries come back from the peers'
// anti-entropy after the node restarts with its persisted index. (Index
// entries and tags are keyed, so they never outgrow the index itself;
// manifest bodies, up to 4 MiB each, are what the bound is on.)
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "base/error.h"

namespace ep {
class KvStore;
class Registry;
}  // namespace ep

namespace ep::actors {

struct StoreWrites;

class PendingWrites {
 public:
  static constexpr uint64_t kMaxBytes = 64ull << 20;

  // Takes `writes` in, replacing pending writes of the same keys.
  void add(const StoreWrites& writes);
  // Writes everything pending; forgets it all when every write landed,
  // keeps it all otherwise. Returns the first failure.
  Status flush(KvStore& kv, Registry& registry);

  bool empty() const { return entries_.empty() && manifests_.empty() && tags_.empty(); }
  size_t size() const { return entries_.size() + manifests_.size() + tags_.size(); }
  uint64_t dropped() const { return dropped_; }

 private:
  void bound();

  using TagKey = std::tuple<std::string, std::string, std::string>;  // namespace, repository, tag
  std::map<std::string, std::optional<std::string>> entries_;       // index key -> value (nullopt: delete)
  std::map<std::string, std::pair<std::string, std::string>> manifests_;  // digest -> media type, body
  std::map<TagKey, std::string> tags_;                                // -> digest ("" deleted)
  std::vector<std::string> arrival_;  // manifest digests, oldest first (what the bound drops)
  uint64_t bytes_ = 0;  // of manifest bodies
  uint64_t dropped_ = 0;
};

}  // namespace ep::actors
