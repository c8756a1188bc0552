// Membership and the site simulation (small sizes; seeds printed on failure).
#include <catch2/catch.hpp>

#include "simulation.h"
#include "site/membership.h"

using namespace ep;

TEST_CASE("membership: alive -> suspect -> dead -> gone; restart and leave") {
  wire::Member self;
  self.set_name("a");
  site::Membership m(self, site::MembershipOptions{3000, 6000, 60000});
  wire::Member b;
  b.set_name("b");
  b.set_incarnation(1);
  REQUIRE(m.heard(b, 0));
  CHECK(m.find("b")->liveness == site::Liveness::alive);
  m.tick(3500);
  CHECK(m.find("b")->liveness == site::Liveness::suspect);
  m.tick(6500);
  CHECK(m.find("b")->liveness == site::Liveness::dead);
  b.set_incarnation(2);
  auto back = m.heard(b, 7000);
  REQUIRE(back);
  CHECK(back->restarted);
  CHECK(m.find("b")->liveness == site::Liveness::alive);
  b.set_incarnation(1);
  CHECK_FALSE(m.heard(b, 7100));  // stale message from the previous life
  REQUIRE(m.left("b", 8000));
  CHECK(m.live_peers().empty());
  auto events = m.tick(8000 + 60000);
  REQUIRE(events.size() == 1);
  CHECK(events[0].gone);
  CHECK(m.find("b") == nullptr);
}

TEST_CASE("simulated site converges after partitions, loss, crashes and restarts") {
  for (uint64_t seed : {1, 2, 3, 4, 5}) {
    INFO("seed " << seed << " (replay: build/bin/site_sim --nodes 12 --seed " << seed << ")");
    sim::SimOptions options;
    options.nodes = 12;
    options.seed = seed;
    options.drop = 0.1;
    sim::Simulation s(options);
    REQUIRE(s.run_until_converged(30000));
    std::vector<int> halves(s.size());
    for (size_t i = 0; i < s.size(); ++i) halves[i] = i % 2;
    s.partition(halves);
    s.crash(3);
    for (int k = 0; k < 150; ++k) {
      s.random_operation();
      s.run_for(20);
    }
    REQUIRE_FALSE(s.converged());  // the partition really diverged the halves
    s.heal();
    s.restart(3);
    auto took = s.run_until_converged(30000);
    REQUIRE(took);
    CHECK(*took <= 5000);  // the bound after healing
  }
}
