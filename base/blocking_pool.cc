// BlockingPool (see blocking_pool.h) over an Asio io_context: threads wait
// for work in run_one_for(), so an idle thread notices its idle timeout
// without polling. Boost.Asio is included after <utility>.
#include <utility>

#include "base/blocking_pool.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <list>
#include <mutex>
#include <thread>

#include "base/log.h"

namespace ep {

namespace net = boost::asio;

struct BlockingPool::Impl {
  struct Worker {
    std::thread thread;
    bool done = false;  // set (under mu) as the thread's last step
  };

  Impl(size_t max, std::chrono::milliseconds idle) : max_threads(std::max<size_t>(max, 1)), idle_timeout(idle) {}

  void run(Worker& self) {
    for (;;) {
      const bool ran = ioc.run_one_for(idle_timeout) > 0;
      std::lock_guard lock(mu);
      // Drained at stop, or idle for a whole timeout with more threads than
      // work: this one ends.
      if (ioc.stopped() || (!ran && !stopped && pending < alive)) {
        --alive;
        self.done = true;
        return;
      }
    }
  }

  // Joins the threads that ended (mu held; they no longer take it).
  void join_finished() {
    for (auto it = workers.begin(); it != workers.end();) {
      if (!it->done) {
        ++it;
        continue;
      }
      it->thread.join();
      it = workers.erase(it);
    }
  }

  const size_t max_threads;
  const std::chrono::milliseconds idle_timeout;
  net::io_context ioc{1};
  net::executor_work_guard<net::io_context::executor_type> keep{ioc.get_executor()};
  mutable std::mutex mu;
  std::list<Worker> workers;
  size_t alive = 0;    // threads not yet ended
  size_t pending = 0;  // work posted and not yet finished
  bool stopped = false;
};

BlockingPool::BlockingPool(size_t max_threads, std::chrono::milliseconds idle_timeout)
    : impl_(std::make_unique<Impl>(max_threads, idle_timeout)) {}

BlockingPool::~BlockingPool() { stop(); }

bool BlockingPool::post(std::function<void()> work) {
  auto& s = *impl_;
  {
    std::lock_guard lock(s.mu);
    if (s.stopped) return false;
    s.join_finished();
    ++s.pending;
    if (s.pending > s.alive && s.alive < s.max_threads) {
      try {
        auto& worker = s.workers.emplace_back();
        worker.thread = std::thread([&s, &worker] { s.run(worker); });
        ++s.alive;
      } catch (...) {  // no thread now: the queued work waits for a running one
        s.workers.pop_back();
        internal_error("starting a pool thread");
        if (s.alive == 0) {
          --s.pending;
          return false;
        }
      }
    }
    // Queued under the lock: stop() cannot slip in between the check above
    // and the queueing, so whatever post() accepted, stop() drains.
    net::post(s.ioc, [&s, work = std::move(work)] {
      guarded("pool work", [&] {
        work();
        return Status::Ok();
      });
      std::lock_guard lock(s.mu);
      --s.pending;
    });
  }
  return true;
}

void BlockingPool::stop() {
  auto& s = *impl_;
  {
    std::lock_guard lock(s.mu);
    if (s.stopped) return;
    s.stopped = true;
  }
  // Without the guard the context stops once the queue is empty; no thread
  // retires before then (pending >= alive while work is queued).
  s.keep.reset();
  std::list<Impl::Worker> workers;
  {
    std::lock_guard lock(s.mu);
    workers.swap(s.workers);
  }
  for (auto& w : workers) w.thread.join();
}

size_t BlockingPool::threads() const {
  std::lock_guard lock(impl_->mu);
  return impl_->alive;
}

}  // namespace ep
