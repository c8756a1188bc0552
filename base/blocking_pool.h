// BlockingPool: the node's pool for work that must block (a handler waiting
// on the uplink, a disk scan), so that no I/O thread and no CAF worker does.
//
// Ownership: owned by the Node (one per role, sized by settings); threads
// start only when work waits and none is free, never more than max_threads,
// and a thread idle for idle_timeout ends, so an idle node holds none. Every
// thread is joined: by a later post() once it ended, or by stop().
// Thread-safe. Invariant: work accepted by post() always runs, stop()
// included (it drains the queue), so whoever waits on that work is always
// released; nothing runs once stop() returned. Work posted while the owner
// stops should therefore notice it and end quickly.
//
// Work that waits for other work must not share a bounded pool with it (the
// waiters could fill every thread): each role has its own pool.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

namespace ep {

class BlockingPool {
 public:
  BlockingPool(size_t max_threads, std::chrono::milliseconds idle_timeout = std::chrono::seconds(5));
  ~BlockingPool();
  BlockingPool(const BlockingPool&) = delete;
  BlockingPool& operator=(const BlockingPool&) = delete;

  // Queues `work` (an exception it throws is logged, never fatal); false
  // once the pool is stopping.
  bool post(std::function<void()> work);
  // Refuses new work, runs what is queued, joins every thread.
  void stop();
  size_t threads() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ep
