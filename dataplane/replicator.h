// Replicator: makes this node hold the pinned images the replication factor
// assigns to it (all members for "all", else the first N members in
// rendezvous order of the reference), fetching missing blobs in the
// background from peers (or, for mirrored images, through the site's
// chunked fetch), one blob at a time, each only once no client pull here is
// fetching (prefetch yields to pulls: the uplink, the peers and this node's
// CPU go to what a pod is waiting for; at most a minute at a time).
// Owns one thread; stopped by its destructor.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "dataplane/mirror.h"
#include "storage/blob_store.h"
#include "registry/registry.h"
#include "site/index_snapshot.h"
#include "site/peer_directory.h"

namespace ep {

class Replicator {
 public:
  Replicator(Registry& registry, BlobStore& blobs, Mirror& mirror, std::shared_ptr<site::IndexSnapshot> index,
             std::shared_ptr<site::PeerDirectory> peers, std::string self_name);
  ~Replicator();
  void start();
  // Evicts least-recently-used unpinned blobs while storage exceeds `bytes`
  // (0: unlimited). Unpinned content can be fetched again from the site or
  // its upstream.
  void set_storage_budget(uint64_t bytes) { budget_ = bytes; }
  uint64_t blobs_evicted() const { return evicted_; }
  // Whether this node should hold a pinned image (pure; used by tests too).
  static bool assigned(const crdt::PinView& pin, const std::string& self, std::vector<std::string> members);
  uint64_t blobs_replicated() const { return replicated_; }

 private:
  void run();
  void replicate(const crdt::PinView& pin);
  void enforce_budget();
  void yield_to_clients();

  Registry& registry_;
  BlobStore& blobs_;
  Mirror& mirror_;
  std::shared_ptr<site::IndexSnapshot> index_;
  std::shared_ptr<site::PeerDirectory> peers_;
  std::string self_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::atomic<uint64_t> replicated_{0}, evicted_{0}, budget_{0};
};

}  // namespace ep
