// Membership and the site simulation (small sizes; seeds printed on failure).
#include <algorithm>
#include <memory>
#include <random>
#include <catch2/catch.hpp>

#include "simulation.h"
#include "site/core.h"
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

TEST_CASE("a member announcing a longer heartbeat period is allowed silences longer by as much") {
  wire::Member self;
  self.set_name("a");
  site::Membership m(self, site::MembershipOptions{3000, 6000, 60000, 1000});
  wire::Member slow, plain;
  slow.set_name("slow");
  slow.set_heartbeat_ms(5000);  // a large site's period
  plain.set_name("plain");      // announces none: the reference period
  m.heard(slow, 0);
  m.heard(plain, 0);
  m.tick(3500);
  CHECK(m.find("plain")->liveness == site::Liveness::suspect);
  CHECK(m.find("slow")->liveness == site::Liveness::alive);  // two beats of 5 s are not missed yet
  m.tick(15000);
  CHECK(m.find("slow")->liveness == site::Liveness::suspect);
  m.tick(29000);
  CHECK(m.find("slow")->liveness == site::Liveness::suspect);
  m.tick(30000);
  CHECK(m.find("slow")->liveness == site::Liveness::dead);
  wire::Member absurd;  // announces a period of weeks: still found out within a minute's beats
  absurd.set_name("absurd");
  absurd.set_heartbeat_ms(2000000000);
  m.heard(absurd, 30000);
  m.tick(30000 + 3 * 60000);
  CHECK(m.find("absurd")->liveness == site::Liveness::suspect);
}

TEST_CASE("a large site spreads its heartbeats: few messages per node at rest, and nobody is suspected") {
  // Idle CPU of a node grows with the messages it sends and receives; with a
  // heartbeat to every member each second a 30-node site sent 29 a second.
  sim::SimOptions options;
  options.nodes = 30;
  options.seed = 11;
  INFO("replay: build/bin/site_sim --nodes 30 --seed 11");
  sim::Simulation s(options);
  REQUIRE(s.run_until_converged(20000));
  s.run_for(30000);  // past the joins' bursts and the first stretched beats
  const uint64_t before = s.messages();
  s.run_for(60000);
  const double per_node_per_s = double(s.messages() - before) / s.size() / 60.0;
  CAPTURE(per_node_per_s);
  CHECK(per_node_per_s <= 8.0);  // 5 heartbeats and 1-2 anti-entropy rounds a second
  const auto* first = s.core(1).membership().find(s.core(0).self().name());
  REQUIRE(first);
  CHECK(first->info.heartbeat_ms() == 29 * 1000 / 5);  // as announced: 29 peers, 5 beats a second
  for (size_t i = 0; i < s.size(); ++i)
    for (const auto& [name, member] : s.core(i).membership().members()) {
      INFO(s.core(i).self().name() << " sees " << name << " " << site::liveness_name(member.liveness));
      CHECK(member.liveness == site::Liveness::alive);
    }
  // A member that stops answering is still found out, within its six beats.
  const std::string victim = s.core(4).self().name();
  s.crash(4);
  s.run_for(61000);
  const auto* gone = s.core(0).membership().find(victim);
  REQUIRE(gone);
  CHECK(gone->liveness == site::Liveness::dead);
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

TEST_CASE("membership keeps its live count and live-set hash in step with the member list") {
  wire::Member a, b;
  a.set_name("a");
  b.set_name("b");
  site::Membership ma(a, site::MembershipOptions{3000, 6000, 60000});
  site::Membership mb(b, site::MembershipOptions{3000, 6000, 60000});
  auto member = [](const std::string& name) {
    wire::Member m;
    m.set_name(name);
    m.set_incarnation(1);
    return m;
  };
  ma.heard(member("b"), 0);
  ma.learn(member("c"), 0);  // learned: suspect, still live
  mb.heard(member("a"), 0);
  CHECK(ma.live_count() == ma.live_peers().size());
  CHECK(ma.live_count() == 2);
  CHECK(ma.live_set_hash() != mb.live_set_hash());  // b does not know c
  mb.heard(member("c"), 10);
  CHECK(ma.live_set_hash() == mb.live_set_hash());  // both know {a, b, c}
  ma.connection_lost("b", 20);
  CHECK(ma.live_count() == 2);  // suspect is live
  ma.tick(7000);                // both silent past dead_after
  CHECK(ma.live_count() == 0);
  CHECK(ma.live_peers().empty());
  ma.heard(member("b"), 7100);
  CHECK(ma.live_count() == 1);
  ma.left("b", 7200);
  CHECK(ma.live_count() == 0);
}

TEST_CASE("a leave from an earlier incarnation does not retire the member's current one") {
  wire::Member self;
  self.set_name("a");
  site::SiteCore core(self, site::CoreOptions{}, 1, nullptr);
  auto from_b = [](uint64_t incarnation, bool leave) {
    wire::Envelope e;
    e.set_sender("b");
    e.set_incarnation(incarnation);
    wire::Member b;
    b.set_name("b");
    b.set_incarnation(incarnation);
    if (leave) {
      b.set_leaving(true);
      *e.mutable_leave() = b;
    } else {
      *e.mutable_hello() = b;
    }
    return e;
  };
  core.receive(from_b(5, false), 1000);
  core.receive(from_b(4, true), 1100);  // replayed from b's previous life
  REQUIRE(core.membership().find("b"));
  CHECK(core.membership().find("b")->liveness == site::Liveness::alive);
  core.receive(from_b(5, true), 1200);  // b really leaves
  CHECK(core.membership().find("b")->liveness == site::Liveness::left);
}

TEST_CASE("a 150-node simulated site joins, and converges within 5 s after a partition heals") {
  // Guards the cost of the control plane at scale: member lists and index
  // syncs must not grow with the square of the site per event.
  sim::SimOptions options;
  options.nodes = 150;
  options.seed = 7;
  options.drop = 0.02;
  INFO("replay: build/bin/site_sim --nodes 150 --seed 7 --drop 0.02");
  sim::Simulation s(options);
  auto joined = s.run_until_converged(20000);
  REQUIRE(joined);
  CHECK(*joined <= 10000);
  std::vector<int> halves(s.size());
  for (size_t i = 0; i < s.size(); ++i) halves[i] = i < s.size() / 2;
  s.partition(halves);
  for (int k = 0; k < 50; ++k) {
    s.random_operation();
    s.run_for(20);
  }
  s.heal();
  auto healed = s.run_until_converged(20000);
  REQUIRE(healed);
  CHECK(*healed <= 5000);
}

TEST_CASE("a node back after being gone does not bring back tags the site deleted and forgot") {
  sim::SimOptions options;
  options.nodes = 4;
  options.seed = 11;
  options.core.membership.gone_after_ms = 20000;  // dead at 6 s, dropped 20 s later
  INFO("seed 11, 4 nodes");
  sim::Simulation s(options);
  REQUIRE(s.run_until_converged(20000));
  crdt::TagKey key{"", "team/app", "old"};
  wire::Manifest m;
  m.set_digest("sha256:" + std::string(64, 'b'));
  m.set_media_type("application/vnd.oci.image.manifest.v1+json");
  s.put_tag(0, key, m);
  REQUIRE(s.run_until_converged(5000));
  REQUIRE(s.core(3).index().tag(key));
  s.crash(3);  // node 3 keeps the tag on its disk
  s.delete_tag(0, key);
  s.run_for(40000);  // node 3 is dead, then gone; the tombstone is collected
  REQUIRE(s.core(0).membership().find("node3") == nullptr);
  const size_t entries_after_gc = s.core(0).index().size();
  CHECK(entries_after_gc == 0);  // not even a tombstone is left
  s.restart(3);
  REQUIRE(s.run_until_converged(20000));
  for (size_t i = 0; i < s.size(); ++i) CHECK_FALSE(s.core(i).index().tag(key));
  // and a tag written while the site forgot the old one is kept
  crdt::TagKey fresh{"", "team/app", "new"};
  s.put_tag(3, fresh, m);
  REQUIRE(s.run_until_converged(5000));
  CHECK(s.core(0).index().tag(fresh));
}

TEST_CASE("a whole site down longer than gone-after keeps its tags") {
  sim::SimOptions options;
  options.nodes = 4;
  options.seed = 12;
  options.core.membership.gone_after_ms = 20000;
  INFO("seed 12, 4 nodes");
  sim::Simulation s(options);
  REQUIRE(s.run_until_converged(20000));
  crdt::TagKey kept{"", "team/app", "v1"}, deleted{"", "team/app", "gone"};
  wire::Manifest m;
  m.set_digest("sha256:" + std::string(64, 'c'));
  m.set_media_type("application/vnd.oci.image.manifest.v1+json");
  s.put_tag(0, kept, m);
  s.put_tag(0, deleted, m);
  REQUIRE(s.run_until_converged(5000));
  s.delete_tag(1, deleted);
  s.run_for(5000);  // the tombstone is collected while everyone is up
  for (size_t i = 0; i < s.size(); ++i) s.crash(i);
  s.run_for(60000);  // a long weekend
  for (size_t i = 0; i < s.size(); ++i) s.restart(i);
  REQUIRE(s.run_until_converged(20000));
  for (size_t i = 0; i < s.size(); ++i) {
    CHECK(s.core(i).index().tag(kept));
    CHECK_FALSE(s.core(i).index().tag(deleted));
  }
}

TEST_CASE("a node announces what it can serve at once, and peers see it without waiting for the heartbeat") {
  auto member = [](const std::string& name) {
    wire::Member m;
    m.set_name(name);
    return m;
  };
  auto hellos = [](const site::Effects& fx) {
    return std::count_if(fx.send.begin(), fx.send.end(), [](const auto& o) { return o.envelope.has_hello(); });
  };
  site::SiteCore a(member("a"), site::CoreOptions{}, 1, nullptr);
  site::SiteCore b(member("b"), site::CoreOptions{}, 2, nullptr);
  wire::Envelope hello_from_b;
  hello_from_b.set_sender("b");
  *hello_from_b.mutable_hello() = member("b");
  a.receive(hello_from_b, 1000);
  REQUIRE(a.membership().find("b"));
  REQUIRE(a.membership().find("b")->liveness == site::Liveness::alive);
  a.tick(1000);

  // Chunks 0 and 2 of a blob completed here, 300 ms after the last beat.
  wire::BlobHolding partial;
  partial.set_digest("sha256:0123");
  partial.set_chunks(std::string(1, '\x05'));
  a.set_blob_holdings({partial});
  CHECK(hellos(a.tick(1300)) == 0);  // the regular beat is not due yet ...
  auto fx = a.announce(1300);        // ... the announcement goes out now
  REQUIRE(fx.send.size() == 1);
  CHECK(fx.send[0].to == "b");
  CHECK(fx.send[0].envelope.has_hello());
  b.receive(fx.send[0].envelope, 1300);
  const auto* seen = b.membership().find("a");
  REQUIRE(seen);
  REQUIRE(seen->info.blobs_size() == 1);
  CHECK(seen->info.blobs(0).digest() == "sha256:0123");
  CHECK(seen->info.blobs(0).chunks() == std::string(1, '\x05'));
  // It counts as the beat: the next one is a full interval later.
  CHECK(hellos(a.tick(2100)) == 0);
  CHECK(hellos(a.tick(2300)) == 1);
}

TEST_CASE("a member's envelopes, mutated after authentication, never throw in the core") {
  // The gateway only lets sealed envelopes from members through, but a member
  // may run other code: whatever it sends must be an error, not a crash.
  auto make = [](const std::string& name) {
    wire::Member self;
    self.set_name(name);
    self.set_cluster_address(name + ":7946");
    self.set_incarnation(1);
    return std::make_unique<site::SiteCore>(self, site::CoreOptions{}, 7, nullptr);
  };
  auto a = make("a"), b = make("b");
  std::vector<std::string> sent;
  auto keep = [&](site::Effects fx) {
    for (auto& out : fx.send) sent.push_back(out.envelope.SerializeAsString());
  };
  keep(a->start(0, {"b:7946"}));
  keep(a->connected("b:7946", 10));
  wire::Manifest m;
  m.set_digest("sha256:" + std::string(64, 'a'));
  m.set_media_type("application/vnd.oci.image.manifest.v1+json");
  m.set_body("{}");
  keep(a->put_tag(crdt::TagKey{"", "lib/app", "v1"}, m, 20));
  keep(a->add_pin("lib/app:v1", 2, 30));
  for (uint64_t t = 1000; t <= 5000; t += 1000) keep(a->tick(t));
  REQUIRE_FALSE(sent.empty());
  std::mt19937_64 rng(17);
  size_t parsed = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string bytes = sent[rng() % sent.size()];
    for (int k = 1 + rng() % 4; k > 0 && !bytes.empty(); --k) {
      size_t pos = rng() % bytes.size();
      switch (rng() % 3) {
        case 0: bytes[pos] = static_cast<char>(rng()); break;
        case 1: bytes.insert(pos, 1, static_cast<char>(rng())); break;
        default: bytes.erase(pos, 1 + rng() % 8); break;
      }
    }
    wire::Envelope envelope;
    if (!envelope.ParseFromString(bytes)) continue;
    ++parsed;
    INFO("mutation " << i);
    REQUIRE_NOTHROW(b->receive(envelope, 6000 + i));
  }
  CHECK(parsed > 1000);
}
