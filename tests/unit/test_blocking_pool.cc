// BlockingPool: threads on demand, never more than the bound, none when idle,
// all joined by stop().
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>
#include <vector>

#include "base/blocking_pool.h"

using namespace ep;
using namespace std::chrono_literals;

namespace {
// Waits (in the test) until `predicate` holds, at most `limit`.
template <class P>
bool eventually(P predicate, std::chrono::milliseconds limit = 5000ms) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!predicate()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}
}  // namespace

TEST_CASE("a pool starts no thread until work comes, and never more than its bound") {
  BlockingPool pool(3, 200ms);
  CHECK(pool.threads() == 0);
  std::promise<void> release;
  auto gate = release.get_future().share();
  std::atomic<int> running{0}, peak{0}, done{0};
  for (int i = 0; i < 10; ++i)
    REQUIRE(pool.post([&, gate] {
      int now = ++running;
      for (int seen = peak; now > seen && !peak.compare_exchange_weak(seen, now);) {
      }
      gate.wait();
      --running;
      ++done;
    }));
  REQUIRE(eventually([&] { return running == 3; }));
  CHECK(pool.threads() == 3);
  release.set_value();
  REQUIRE(eventually([&] { return done == 10; }));
  CHECK(peak == 3);
  // Idle threads end after the idle timeout.
  CHECK(eventually([&] { return pool.threads() == 0; }));
}

TEST_CASE("a pool runs work again after its threads ended idle") {
  BlockingPool pool(2, 50ms);
  std::atomic<int> done{0};
  REQUIRE(pool.post([&] { ++done; }));
  REQUIRE(eventually([&] { return pool.threads() == 0 && done == 1; }));
  REQUIRE(pool.post([&] { ++done; }));
  CHECK(eventually([&] { return done == 2; }));
}

TEST_CASE("stop runs running and queued work to the end, then refuses more") {
  BlockingPool pool(1, 5000ms);
  std::atomic<bool> first_started{false}, first_finished{false}, second_ran{false};
  REQUIRE(pool.post([&] {
    first_started = true;
    std::this_thread::sleep_for(100ms);
    first_finished = true;
  }));
  REQUIRE(pool.post([&] { second_ran = true; }));
  REQUIRE(eventually([&] { return first_started.load(); }));
  pool.stop();
  CHECK(first_finished);
  CHECK(second_ran);  // whoever waits on queued work is released
  CHECK(pool.threads() == 0);
  CHECK_FALSE(pool.post([] {}));
}

TEST_CASE("work that throws is contained and the pool goes on") {
  BlockingPool pool(1, 1000ms);
  std::atomic<int> done{0};
  REQUIRE(pool.post([] { throw std::runtime_error("boom"); }));
  REQUIRE(pool.post([&] { ++done; }));
  CHECK(eventually([&] { return done == 1; }));
}
