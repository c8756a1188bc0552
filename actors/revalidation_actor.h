// The revalidation actor: single flight and freshness for mirrored tags
// (the TagRevalidations of dataplane/tag_revalidations.h).
//
// Ownership: spawned by the Node and stopped by it before the Mirror goes.
// It owns which tags were revalidated within tag-ttl (a timer ends each
// one's freshness, so no clock is read) and, per tag, the running
// revalidation and its waiters. It never blocks: the revalidation itself is
// started through the Mirror's Run, which works on the I/O and disk pools
// and reports back by message. Invariants: at most one revalidation per tag
// runs; every waiter is answered exactly once, with the outcome, with "serve
// what is known" (fresh tag, or patience ran out), or with an error when the
// actor stops.
#pragma once

#include <caf/fwd.hpp>
#include <chrono>
#include <memory>

#include "dataplane/tag_revalidations.h"

namespace ep::actors {

caf::actor spawn_revalidation_actor(caf::actor_system& system, std::chrono::milliseconds tag_ttl);
// The actor as the Mirror sees it: ask() is a message to it.
std::unique_ptr<TagRevalidations> revalidations_of(caf::actor actor);

}  // namespace ep::actors
