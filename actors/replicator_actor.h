// The replicator actor: drives replication (dataplane/replicator.h) without
// ever blocking a CAF worker.
//
// Ownership: spawned by the Node, which stops it (exit message, then waits
// for it) after the blocking pool it posts to has stopped and before the
// ReplicationWork goes. It owns the round in progress: the queue of blobs to
// fetch, and how often the first of them yielded to client pulls.
//
// A round: every `round_every` after the last one ended, the blocking pool
// lists the blobs to fetch; they are fetched one at a time (a fetch is
// started on the pool and its end arrives as a message, no thread waits for
// it); a fetch yields to client pulls, asking again every `yield_retry`, at
// most `max_yields` times in a row, so a steady stream of pulls cannot hold
// the pinned images back for ever; then housekeeping (the storage budget,
// garbage collection) runs on the pool, and the next round is scheduled.
// Invariants: at most one call into ReplicationWork runs at a time; a tick
// that arrives during a round is dropped.
#pragma once

#include <caf/fwd.hpp>
#include <chrono>
#include <functional>

namespace ep {
class ReplicationWork;
}

namespace ep::actors {

// Runs work on the node's blocking pool; false if the pool refused it (stopping).
using BlockingRunner = std::function<bool(std::function<void()>)>;

struct ReplicatorTiming {
  std::chrono::milliseconds round_every{3000};
  std::chrono::milliseconds yield_retry{500};
  int max_yields = 120;  // a minute of yielding, then the prefetch runs anyway
};

caf::actor spawn_replicator_actor(caf::actor_system& system, ReplicationWork& work, BlockingRunner run_blocking,
                                  ReplicatorTiming timing = {});

}  // namespace ep::actors
