// TagRevalidations: who decides when a mirrored tag is asked of its
// upstream again, and who waits for that answer.
//
// Implemented by the revalidation actor (actors/revalidation_actor.h), which
// owns the state: the tags revalidated within tag-ttl, and one revalidation
// per tag at a time with the clients waiting on it. The Mirror starts the
// work (an upstream HEAD, maybe a manifest GET, registry writes) without
// blocking and reports its outcome. Invariants: a tag has at most one
// revalidation running; every waiter is answered exactly once.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "base/error.h"
#include "registry/registry.h"

namespace ep {

class TagRevalidations {
 public:
  // A revalidation's outcome; null tells a waiter to serve the last known
  // answer (the tag is fresh, or the waiter's patience ran out).
  using Outcome = std::shared_ptr<const Result<StoredManifest>>;
  using Waiter = std::function<void(Outcome)>;
  // Starts a revalidation without blocking; calls `done` once, from any thread.
  using Run = std::function<void(std::function<void(Outcome)> done)>;

  virtual ~TagRevalidations() = default;
  // A client asks for tag `key`. If it was revalidated within tag-ttl and
  // `known` (a digest is cached), `waiter` is told to serve that; else it
  // joins the running revalidation, or `run` starts one. After `patience`
  // (0: none) it is told to serve what is known, if still waiting.
  virtual void ask(const std::string& key, bool known, std::chrono::milliseconds patience, Run run, Waiter waiter) = 0;
};

}  // namespace ep
