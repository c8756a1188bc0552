// The store actor: the site's RocksDB and registry writes (index entries,
// replicated manifests and tags, the membership memory) and the reads that
// stat many blobs (which pinned images are complete here).
//
// Ownership: spawned by the site actor, detached (its own thread, which the
// actor system joins at shutdown), so the site actor never blocks a CAF
// worker on the disk. It works through its mailbox in order: writes land in
// the order the site actor made them, and the stop message the site actor
// queues when it ends comes after every write it sent. Writes that fail (a
// full disk) are kept (actors/pending_writes.h) and retried until they land,
// so a node whose disk filled up serves what the site replicated meanwhile
// once space returns, without a restart.
#pragma once

#include <caf/fwd.hpp>
#include <string>
#include <vector>

namespace ep {
class KvStore;
class Registry;
}  // namespace ep

namespace ep::actors {

// One batch of writes, flattened into CAF's built-in types.
struct StoreWrites {
  std::vector<std::string> puts;       // key, value, key, value, ...
  std::vector<std::string> deletes;    // keys
  std::vector<std::string> manifests;  // digest, media type, body, ...
  std::vector<std::string> tags;       // namespace, repository, tag, digest ("" = deleted), ...
  bool empty() const { return puts.empty() && deletes.empty() && manifests.empty() && tags.empty(); }
};

caf::actor spawn_store_actor(caf::local_actor* parent, KvStore& kv, Registry& registry);
// Queues `writes` (in order behind earlier ones); nothing when empty.
void send_writes(const caf::actor& store, StoreWrites writes);

}  // namespace ep::actors
