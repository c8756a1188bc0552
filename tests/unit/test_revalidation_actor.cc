// The revalidation actor, run deterministically by CAF's test coordinator:
// no thread, no wall clock (patience and tag-ttl are timers the test fires).
// The revalidation work is a fake whose end the test reports.
#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <catch2/catch.hpp>

#include "actors/caf_types.h"
#include "actors/revalidation_actor.h"

using namespace ep;

namespace {

struct Fixture {
  caf::actor_system_config config;
  std::unique_ptr<caf::actor_system> system;
  caf::scheduler::test_coordinator* sched = nullptr;
  caf::actor actor;
  std::unique_ptr<TagRevalidations> revalidations;
  std::vector<std::function<void(TagRevalidations::Outcome)>> running;  // started revalidations' ends
  // What each waiter was told, by waiter name: "known", "ok:<digest>", "error:<message>".
  std::map<std::string, std::vector<std::string>> told;

  Fixture() {
    config.set("scheduler.policy", caf::atom("testing"));
    config.set("logger.verbosity", caf::atom("quiet"));
    system = std::make_unique<caf::actor_system>(config);
    sched = &dynamic_cast<caf::scheduler::test_coordinator&>(system->scheduler());
    actor = actors::spawn_revalidation_actor(*system, std::chrono::seconds(30));
    revalidations = actors::revalidations_of(actor);
    sched->run();
  }
  ~Fixture() { stop(); }
  void stop() {
    if (!actor) return;
    caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
    sched->run();
    actor = nullptr;
    revalidations.reset();
  }

  void ask(const std::string& waiter, const std::string& key, bool known, std::chrono::milliseconds patience) {
    revalidations->ask(
        key, known, patience, [this](std::function<void(TagRevalidations::Outcome)> end) { running.push_back(end); },
        [this, waiter](TagRevalidations::Outcome outcome) {
          if (!outcome)
            told[waiter].push_back("known");
          else if (*outcome)
            told[waiter].push_back("ok:" + (*outcome)->digest.str());
          else
            told[waiter].push_back("error:" + outcome->status().message);
        });
    sched->run();
  }
  void end(size_t i, Result<StoredManifest> result) {
    running.at(i)(std::make_shared<const Result<StoredManifest>>(std::move(result)));
    sched->run();
  }
  void next_timer() {
    REQUIRE(sched->trigger_timeout());
    sched->run();
  }
};

StoredManifest manifest(const std::string& body) { return StoredManifest{Digest::of(body), "application/json", body}; }

}  // namespace

TEST_CASE("revalidation actor: one revalidation per tag, its outcome for every waiter") {
  Fixture f;
  f.ask("a", "ns1/app:v1", false, std::chrono::seconds(60));
  f.ask("b", "ns1/app:v1", false, std::chrono::seconds(60));
  f.ask("c", "ns1/other:v1", false, std::chrono::seconds(60));
  REQUIRE(f.running.size() == 2);  // app:v1 once, other:v1 once
  CHECK(f.told.empty());
  auto m = manifest("{}");
  f.end(0, m);
  CHECK(f.told["a"] == std::vector<std::string>{"ok:" + m.digest.str()});
  CHECK(f.told["b"] == std::vector<std::string>{"ok:" + m.digest.str()});
  CHECK(f.told.count("c") == 0);
  // Each waiter was answered once: the patience timers that fire later say nothing more.
  while (f.sched->trigger_timeout()) f.sched->run();
  CHECK(f.told["a"].size() == 1);
  CHECK(f.told["b"].size() == 1);
}

TEST_CASE("revalidation actor: a fresh tag with a cached digest is served without asking upstream, until tag-ttl ends") {
  Fixture f;
  f.ask("first", "ns1/app:v1", true, std::chrono::milliseconds(500));
  REQUIRE(f.running.size() == 1);
  f.end(0, manifest("{}"));
  f.ask("second", "ns1/app:v1", true, std::chrono::milliseconds(500));
  CHECK(f.running.size() == 1);
  CHECK(f.told["second"] == std::vector<std::string>{"known"});
  // Without a cached digest there is nothing to serve: it asks again.
  f.ask("uncached", "ns1/app:v1", false, std::chrono::seconds(60));
  CHECK(f.running.size() == 2);
  f.end(1, manifest("{}"));
  // tag-ttl ends (the first freshness timer finds a newer revalidation and
  // keeps it fresh; the second one ends it).
  while (f.sched->trigger_timeout()) f.sched->run();
  f.ask("later", "ns1/app:v1", true, std::chrono::milliseconds(500));
  CHECK(f.running.size() == 3);
}

TEST_CASE("revalidation actor: a waiter with a cached answer is told to serve it when its patience ends") {
  Fixture f;
  f.ask("patient", "ns1/app:v1", false, std::chrono::seconds(60));
  f.ask("hurried", "ns1/app:v1", true, std::chrono::milliseconds(500));
  REQUIRE(f.running.size() == 1);
  // The timers fire in the order they were set: the 60 s one first in the
  // test coordinator's queue, so fire until the hurried waiter was told.
  while (f.told["hurried"].empty()) f.next_timer();
  CHECK(f.told["hurried"] == std::vector<std::string>{"known"});
  f.end(0, manifest("{}"));
  CHECK(f.told["hurried"].size() == 1);  // not told twice
}

TEST_CASE("revalidation actor: a failed revalidation does not make the tag fresh") {
  Fixture f;
  f.ask("a", "ns1/app:v1", true, std::chrono::milliseconds(500));
  f.end(0, Status{Errc::manifest_unknown, "gone upstream"});
  CHECK(f.told["a"] == std::vector<std::string>{"error:gone upstream"});
  // "Serve what is known" (the upstream failed) does not either.
  f.ask("b", "ns1/app:v1", true, std::chrono::milliseconds(500));
  REQUIRE(f.running.size() == 2);
  f.running[1](nullptr);
  f.sched->run();
  CHECK(f.told["b"] == std::vector<std::string>{"known"});
  f.ask("c", "ns1/app:v1", true, std::chrono::milliseconds(500));
  CHECK(f.running.size() == 3);
}

TEST_CASE("revalidation actor: waiters still waiting when it stops are told the node is stopping") {
  Fixture f;
  f.ask("a", "ns1/app:v1", false, std::chrono::seconds(60));
  f.stop();
  CHECK(f.told["a"] == std::vector<std::string>{"error:the node is stopping"});
  // The revalidation's end after the stop goes nowhere.
  f.running[0](std::make_shared<const Result<StoredManifest>>(manifest("{}")));
  f.sched->run();
  CHECK(f.told["a"].size() == 1);
}
