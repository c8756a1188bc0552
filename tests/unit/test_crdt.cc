// CRDT property tests: merge is commutative, associative, idempotent and
// convergent under random histories, duplication and reordering.
#include <catch2/catch.hpp>

#include <algorithm>
#include <random>

#include "crdt/index.h"

using namespace ep;
using namespace ep::crdt;

namespace {

struct Replica {
  std::string name;
  Index index;
  HlcClock clock{name};
  explicit Replica(std::string n) : name(std::move(n)), clock(name) {}
};

// Random operations on random replicas; returns every delta produced.
std::vector<wire::IndexDelta> random_history(std::vector<Replica>& replicas, std::mt19937_64& rng, int ops,
                                             bool gossip) {
  std::vector<wire::IndexDelta> deltas;
  uint64_t wall = 1000;
  for (int i = 0; i < ops; ++i) {
    wall += rng() % 3;  // clocks collide often: exercises logical counters and tiebreaks
    auto& r = replicas[rng() % replicas.size()];
    TagKey key{"", "repo" + std::to_string(rng() % 3), "t" + std::to_string(rng() % 3)};
    auto dice = rng() % 100;
    if (dice < 45) {
      deltas.push_back(r.index.put_tag(key, "sha256:" + std::to_string(rng() % 1000), "m", r.clock.now(wall)));
    } else if (dice < 60) {
      deltas.push_back(r.index.delete_tag(key, r.clock.now(wall)));
    } else if (dice < 75) {
      deltas.push_back(
          r.index.add_pin("ref" + std::to_string(rng() % 3), rng() % 3, r.clock.now(wall), /*automatic=*/rng() % 2));
    } else if (dice < 85) {
      if (auto d = r.index.use_pin("ref" + std::to_string(rng() % 3), wall + rng() % 50, rng() % 10)) deltas.push_back(*d);
    } else if (auto d = r.index.remove_pin("ref" + std::to_string(rng() % 3))) {
      deltas.push_back(*d);
    }
    if (gossip && !deltas.empty() && rng() % 2) {
      // Some deltas reach one other replica early (causal chains across nodes).
      auto& other = replicas[rng() % replicas.size()];
      const auto& d = deltas[rng() % deltas.size()];
      other.index.merge(d);
      for (const auto& w : d.tags()) other.clock.observe(from_wire(w.ts()), wall);
    }
  }
  return deltas;
}

Index merged(const std::vector<wire::IndexDelta>& deltas) {
  Index index;
  for (const auto& d : deltas) index.merge(d);
  return index;
}

}  // namespace

TEST_CASE("index merge is order-insensitive, idempotent and convergent") {
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    INFO("seed " << seed);
    std::mt19937_64 rng(seed);
    std::vector<Replica> replicas;
    for (int i = 0; i < 4; ++i) replicas.emplace_back("n" + std::to_string(i));
    auto deltas = random_history(replicas, rng, 60, /*gossip=*/true);

    auto reference = merged(deltas);
    auto shuffled = deltas;
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    // Duplicate a third of them, in random places.
    for (size_t i = 0, n = shuffled.size() / 3; i < n; ++i) shuffled.push_back(shuffled[rng() % shuffled.size()]);
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    auto other = merged(shuffled);
    REQUIRE(other.state_digest() == reference.state_digest());

    // Every replica, after receiving everything, agrees with the reference.
    for (auto& r : replicas) {
      for (const auto& d : shuffled) r.index.merge(d);
      REQUIRE(r.index.state_digest() == reference.state_digest());
    }
  }
}

TEST_CASE("merging whole states is commutative, associative and idempotent") {
  for (uint64_t seed = 1; seed <= 100; ++seed) {
    INFO("seed " << seed);
    std::mt19937_64 rng(seed);
    std::vector<Replica> replicas;
    for (int i = 0; i < 3; ++i) replicas.emplace_back("n" + std::to_string(i));
    random_history(replicas, rng, 40, true);
    std::vector<uint32_t> all;
    for (uint32_t b = 0; b < kBuckets; ++b) all.push_back(b);
    auto a = replicas[0].index.entries(all), b = replicas[1].index.entries(all), c = replicas[2].index.entries(all);
    auto combine = [](std::initializer_list<const wire::IndexDelta*> parts) {
      Index out;
      for (const auto* p : parts) out.merge(*p);
      return out.state_digest();
    };
    CHECK(combine({&a, &b}) == combine({&b, &a}));
    CHECK(combine({&a, &b, &c}) == combine({&c, &b, &a}));
    CHECK(combine({&a, &a, &b}) == combine({&a, &b}));
  }
}

TEST_CASE("last writer wins by HLC, node name breaks ties; concurrent writes are conflicts") {
  Index a, b;
  TagKey key{"", "app", "v1"};
  auto da = a.put_tag(key, "sha256:aaa", "m", Hlc{100, 0, "node-a"});
  auto db = b.put_tag(key, "sha256:bbb", "m", Hlc{100, 0, "node-b"});
  a.merge(db);
  b.merge(da);
  REQUIRE(a.tag(key)->digest == "sha256:bbb");
  REQUIRE(a.state_digest() == b.state_digest());
  auto views = a.tags();
  REQUIRE(views.size() == 1);
  REQUIRE(views[0].conflicts.size() == 1);
  CHECK(views[0].conflicts[0].digest == "sha256:aaa");
  // A later write that saw the winner resolves the conflict everywhere.
  auto resolve = a.put_tag(key, "sha256:ccc", "m", Hlc{101, 0, "node-a"});
  b.merge(resolve);
  CHECK(b.tags()[0].conflicts.empty());
  CHECK(b.tag(key)->digest == "sha256:ccc");
}

TEST_CASE("deletes are tombstones; a delete beats an older write arriving late") {
  Index a, b;
  TagKey key{"docker.io", "library/alpine", "3"};
  auto put = a.put_tag(key, "sha256:1", "m", Hlc{10, 0, "a"});
  b.merge(put);
  auto del = b.delete_tag(key, Hlc{20, 0, "b"});
  Index late;
  late.merge(del);
  late.merge(put);  // reordered
  CHECK_FALSE(late.tag(key));
  CHECK(late.tags().empty());
}

TEST_CASE("pin set: add wins over a concurrent remove") {
  Index a, b;
  auto add1 = a.add_pin("app:v1", 0, Hlc{1, 0, "a"});
  b.merge(add1);
  auto remove = b.remove_pin("app:v1");
  REQUIRE(remove);
  auto add2 = a.add_pin("app:v1", 2, Hlc{2, 0, "a"});  // concurrent with the remove
  a.merge(*remove);
  b.merge(add2);
  REQUIRE(a.state_digest() == b.state_digest());
  auto pins = a.pins();
  REQUIRE(pins.size() == 1);
  CHECK(pins[0].replicas == 2);
  CHECK_FALSE(b.remove_pin("nothing"));
}

TEST_CASE("garbage collection drops only what every member holds") {
  Index a;
  TagKey key{"", "app", "old"};
  a.put_tag(key, "sha256:1", "m", Hlc{1, 0, "a"});
  a.delete_tag(key, Hlc{2, 0, "a"});
  a.add_pin("p", 0, Hlc{3, 0, "a"});
  a.remove_pin("p");
  uint64_t acked = a.change_counter();
  a.put_tag(TagKey{"", "app", "new"}, "sha256:2", "m", Hlc{4, 0, "a"});
  CHECK(a.collect_garbage(0).empty());
  auto erased = a.collect_garbage(acked);
  CHECK(erased.size() == 2);
  CHECK(a.size() == 1);
}

TEST_CASE("entries persist and reload to the same state") {
  Index a;
  a.put_tag(TagKey{"", "x", "1"}, "sha256:1", "m", Hlc{1, 0, "a"});
  a.add_pin("x:1", 3, Hlc{2, 0, "a"});
  Index b;
  for (const auto& key : a.entry_keys()) REQUIRE(b.load_entry(a.encode_entry(key)));
  CHECK(b.state_digest() == a.state_digest());
  CHECK_FALSE(b.load_entry("\xff\xff garbage"));
}

TEST_CASE("pins: explicit beats auto, last use is a max register, auto-pins lapse") {
  Index a, b;
  auto auto_add = a.add_pin("app:v1", 0, Hlc{1000, 0, "a"}, /*automatic=*/true);
  b.merge(auto_add);
  REQUIRE(b.pins().size() == 1);
  CHECK_FALSE(b.pins()[0].explicit_pin);
  CHECK(b.pins()[0].last_used_ms == 1000);  // the add, until a pull
  CHECK_FALSE(b.pins()[0].lapsed(1500, 1000));
  CHECK(b.pins()[0].lapsed(2001, 1000));
  CHECK_FALSE(b.pins()[0].lapsed(2001, 0));  // no TTL: never

  // Pulls on two nodes: the later one wins wherever it arrives first.
  auto late = a.use_pin("app:v1", 5000, 100);
  auto early = b.use_pin("app:v1", 3000, 100);
  REQUIRE(late);
  REQUIRE(early);
  CHECK_FALSE(a.use_pin("app:v1", 5050, 100));  // within a step: no write
  a.merge(*early);
  b.merge(*late);
  CHECK(a.state_digest() == b.state_digest());
  CHECK(a.pins()[0].last_used_ms == 5000);
  CHECK_FALSE(a.pins()[0].lapsed(5900, 1000));
  CHECK(a.pins()[0].lapsed(6001, 1000));
  CHECK_FALSE(a.use_pin("other:v1", 9000, 0));  // not pinned: nothing recorded

  // An explicit pin of the same image makes it stay, however old its use.
  b.merge(a.add_pin("app:v1", 0, Hlc{6000, 0, "a"}));
  CHECK(b.pins()[0].explicit_pin);
  CHECK_FALSE(b.pins()[0].lapsed(1000000, 1000));

  // Last use and kind survive persistence.
  Index c;
  for (const auto& key : b.entry_keys()) REQUIRE(c.load_entry(b.encode_entry(key)));
  CHECK(c.state_digest() == b.state_digest());
  CHECK(c.pins()[0].last_used_ms == 6000);
}

TEST_CASE("a pull recorded before the pin arrives is kept") {
  Index a, b;
  auto add = a.add_pin("app:v1", 0, Hlc{1000, 0, "a"}, true);
  auto use = a.use_pin("app:v1", 4000, 0);
  REQUIRE(use);
  b.merge(*use);  // reordered delivery
  CHECK(b.pins().empty());
  b.merge(add);
  REQUIRE(b.pins().size() == 1);
  CHECK(b.pins()[0].last_used_ms == 4000);
  CHECK(a.state_digest() == b.state_digest());
}

TEST_CASE("a repair travels in bounded pieces that together are the whole state") {
  crdt::Index source;
  for (int i = 0; i < 2500; ++i) {
    source.put_tag(crdt::TagKey{"", "team/app", "t" + std::to_string(i)}, "sha256:aaa", "m", Hlc{100 + uint64_t(i), 0, "n1"},
                   "alice");
    if (i % 2 == 0) source.add_pin("team/app:t" + std::to_string(i), 0, Hlc{5000 + uint64_t(i), 0, "n1"}, true);
  }
  std::vector<uint32_t> all;
  for (uint32_t b = 0; b < crdt::kBuckets; ++b) all.push_back(b);
  auto pieces = source.entry_pieces(all, 1000);
  REQUIRE(pieces.size() == 4);  // 3750 entries
  crdt::Index copy;
  for (const auto& piece : pieces) {
    CHECK(piece.tags_size() + piece.pin_adds_size() <= 1000);
    copy.merge(piece);
  }
  CHECK(copy.state_digest() == source.state_digest());
  CHECK(copy.tag(crdt::TagKey{"", "team/app", "t7"})->writer == "alice");
  CHECK(copy.pinned("team/app:t8"));
  CHECK_FALSE(copy.pinned("team/app:t9"));
}
