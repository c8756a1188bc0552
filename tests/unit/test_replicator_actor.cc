// The replicator actor, run deterministically by CAF's test coordinator: no
// thread, no wall-clock time. Its ReplicationWork is a fake that records
// the calls; blocking work runs when the test says so, as the pool would.
#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <catch2/catch.hpp>
#include <deque>

#include "actors/caf_types.h"
#include "actors/replicator_actor.h"
#include "dataplane/replicator.h"

using namespace ep;

namespace {

struct FakeWork : ReplicationWork {
  std::vector<std::vector<ReplicationJob>> rounds;  // what round() returns, one per call
  std::vector<std::string> calls;                   // "round", "start sha256:..", "start-may-yield ..", "housekeeping"
  int client_pulls_for = 0;                         // start_fetch yields this many more times
  FetchStart answer = FetchStart::started;
  std::vector<std::function<void(bool)>> running;   // started fetches' done callbacks
  int fetched_ok = 0, fetched_failed = 0;

  std::vector<ReplicationJob> round() override {
    calls.push_back("round");
    if (rounds.empty()) return {};
    auto jobs = rounds.front();
    rounds.erase(rounds.begin());
    return jobs;
  }
  FetchStart start_fetch(const ReplicationJob& job, bool may_yield, std::function<void(bool)> done) override {
    calls.push_back((may_yield ? "start " : "start-forced ") + job.digest);
    if (may_yield && client_pulls_for > 0) {
      --client_pulls_for;
      return FetchStart::yielded;
    }
    if (answer == FetchStart::started) running.push_back(std::move(done));
    return answer;
  }
  void note_fetched(bool ok) override { ++(ok ? fetched_ok : fetched_failed); }
  void housekeeping() override { calls.push_back("housekeeping"); }
};

struct Fixture {
  caf::actor_system_config config;
  std::unique_ptr<caf::actor_system> system;
  caf::scheduler::test_coordinator* sched = nullptr;
  std::deque<std::function<void()>> pool;  // work posted to the "blocking pool", run by the test
  bool pool_stopped = false;
  FakeWork work;
  caf::actor actor;

  explicit Fixture(actors::ReplicatorTiming timing = {}) {
    config.set("scheduler.policy", caf::atom("testing"));
    config.set("logger.verbosity", caf::atom("quiet"));
    system = std::make_unique<caf::actor_system>(config);
    sched = &dynamic_cast<caf::scheduler::test_coordinator&>(system->scheduler());
    actor = actors::spawn_replicator_actor(*system, work, [this](std::function<void()> f) {
      if (pool_stopped) return false;
      pool.push_back(std::move(f));
      return true;
    }, timing);
    sched->run();
  }
  ~Fixture() {
    caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
    sched->run();
  }
  // Runs everything ready: the actor's messages and the pool's work, until both are idle.
  void settle() {
    do {
      sched->run();
      while (!pool.empty()) {
        auto f = std::move(pool.front());
        pool.pop_front();
        f();
        sched->run();
      }
    } while (sched->has_job());
  }
  // The next timer fires (the round's tick, or a retry after yielding).
  void next_timer() {
    REQUIRE(sched->trigger_timeout());
    settle();
  }
};

ReplicationJob job(const std::string& digest) { return {"team/app", digest, "", "", false}; }

}  // namespace

TEST_CASE("replicator actor: a round fetches its blobs one at a time, then housekeeping, then waits for the next") {
  Fixture f;
  f.work.rounds = {{job("a"), job("b")}};
  CHECK(f.work.calls.empty());  // nothing before the first tick
  f.next_timer();
  CHECK(f.work.calls == std::vector<std::string>{"round", "start a"});
  REQUIRE(f.work.running.size() == 1);
  f.settle();  // no second fetch while the first runs
  CHECK(f.work.calls.size() == 2);
  f.work.running[0](true);  // the fetch ended (a fetch thread calls this)
  f.settle();
  CHECK(f.work.calls == std::vector<std::string>{"round", "start a", "start b"});
  f.work.running[1](false);
  f.settle();
  CHECK(f.work.calls.back() == "housekeeping");
  CHECK(f.work.fetched_ok == 1);
  CHECK(f.work.fetched_failed == 1);
  // The next round comes only with the next tick.
  CHECK(f.work.calls.size() == 4);
  f.next_timer();
  CHECK(f.work.calls.size() == 6);  // an empty round: round, housekeeping
  CHECK(f.work.calls[4] == "round");
  CHECK(f.work.calls[5] == "housekeeping");
}

TEST_CASE("replicator actor: a fetch that ended before its start was reported still moves the round on") {
  Fixture f;
  f.work.rounds = {{job("a"), job("b")}};
  f.sched->trigger_timeout();
  f.sched->run();
  // The round's listing, then the first start, run on the pool; the fetch
  // ends inline, before the pool's job reports how the start went.
  REQUIRE(f.pool.size() == 1);
  f.pool.front()();
  f.pool.pop_front();
  f.sched->run();
  REQUIRE(f.pool.size() == 1);
  f.pool.front()();
  f.pool.pop_front();
  REQUIRE(f.work.running.size() == 1);
  f.work.running[0](true);
  f.settle();
  CHECK(f.work.calls == std::vector<std::string>{"round", "start a", "start b"});
}

TEST_CASE("replicator actor: a prefetch yields to client pulls, and runs anyway after max_yields") {
  actors::ReplicatorTiming timing;
  timing.max_yields = 3;
  Fixture f(timing);
  f.work.rounds = {{job("a")}};
  f.work.client_pulls_for = 100;  // clients keep pulling
  f.next_timer();
  CHECK(f.work.calls == std::vector<std::string>{"round", "start a"});
  f.next_timer();  // yield_retry
  f.next_timer();
  CHECK(f.work.calls.back() == "start a");
  CHECK(f.work.running.empty());
  f.next_timer();  // the third yield was the last
  CHECK(f.work.calls.back() == "start-forced a");
  CHECK(f.work.running.size() == 1);
}

TEST_CASE("replicator actor: a skipped blob does not stop the round, and a tick during a round is dropped") {
  Fixture f;
  f.work.rounds = {{job("a"), job("b")}, {job("c")}};
  f.work.answer = FetchStart::skipped;
  f.next_timer();
  CHECK(f.work.calls == std::vector<std::string>{"round", "start a", "start b", "housekeeping"});
  f.work.answer = FetchStart::started;
  f.next_timer();
  CHECK(f.work.calls.back() == "start c");
  // While c is fetched, ticks add no round (the next is scheduled only after this one).
  CHECK_FALSE(f.sched->has_pending_timeout());
  caf::anon_send(f.actor, actors::tick_atom::value);
  f.settle();
  CHECK(f.work.calls.back() == "start c");
  CHECK(std::count(f.work.calls.begin(), f.work.calls.end(), "round") == 2);
}

TEST_CASE("replicator actor: at stop, a fetch that ends later and work the pool refused are harmless") {
  Fixture f;
  f.work.rounds = {{job("a"), job("b")}};
  f.next_timer();
  REQUIRE(f.work.running.size() == 1);
  f.pool_stopped = true;  // the node stops its blocking pool first
  f.work.running[0](true);
  f.settle();
  CHECK(f.work.calls.back() == "start a");  // b was refused by the pool, nothing ran
  caf::anon_send_exit(f.actor, caf::exit_reason::user_shutdown);
  f.settle();
  f.work.running[0](true);  // a late end: a message to an actor that is gone
  f.settle();
  CHECK(f.work.fetched_ok == 1);
}
