// Holdings summaries: the Bloom filter, this node's versioned summary, the
// peers' copies, and two SiteCores exchanging them.
#include <algorithm>
#include <random>
#include <catch2/catch.hpp>

#include "site/core.h"
#include "site/holdings_filter.h"

using namespace ep;
using site::HoldingsFilter;
using site::HoldingsSummary;
using site::PeerHoldings;

namespace {

std::vector<uint64_t> random_keys(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint64_t> keys(n);
  for (auto& k : keys) k = rng();
  return keys;
}

wire::Member member(const std::string& name) {
  wire::Member m;
  m.set_name(name);
  return m;
}

// The envelopes of `fx` to `to` that carry holdings.
std::vector<wire::Envelope> holdings_to(const site::Effects& fx, const std::string& to) {
  std::vector<wire::Envelope> out;
  for (const auto& o : fx.send)
    if (o.to == to && o.envelope.has_holdings()) out.push_back(o.envelope);
  return out;
}

}  // namespace

TEST_CASE("holdings_key reads a digest's first 64 bits, and any other text still gets a key") {
  CHECK(site::holdings_key("sha256:0123456789abcdef0000") == 0x0123456789abcdefull);
  CHECK(site::holdings_key("sha256:0123456789abcdef") == 0x0123456789abcdefull);
  CHECK(site::holdings_key("sha256:0123") != site::holdings_key("sha256:0124"));
  CHECK(site::holdings_key("not a digest") == site::holdings_key("not a digest"));
}

TEST_CASE("a holdings filter never misses a held blob, and rarely claims one it lacks") {
  const auto held = random_keys(10000, 1);
  auto filter = HoldingsFilter::sized_for(held.size());
  for (auto k : held) filter.add(k);
  for (auto k : held) REQUIRE(filter.may_hold(k));
  size_t false_positives = 0;
  for (auto k : random_keys(100000, 2)) false_positives += filter.may_hold(k);
  CHECK(false_positives < 2000);  // ~1% expected at capacity
  CHECK(filter.bits().size() == 10000 * HoldingsFilter::kBitsPerBlob / 8);
  CHECK_FALSE(HoldingsFilter().may_hold(held[0]));  // the empty filter holds nothing
}

TEST_CASE("a malformed announced filter is refused") {
  CHECK_FALSE(HoldingsFilter::from_wire("", 7));
  CHECK_FALSE(HoldingsFilter::from_wire(std::string(128, '\xff'), 0));
  CHECK_FALSE(HoldingsFilter::from_wire(std::string(128, '\xff'), 99));
  CHECK(HoldingsFilter::from_wire(std::string(128, '\xff'), 7));
}

TEST_CASE("a peer's copy follows the summary by deltas, and a gap makes it unknown until the whole arrives") {
  HoldingsSummary own;
  own.reset({1, 2, 3});
  PeerHoldings peers;
  CHECK(peers.filter("a") == nullptr);  // nothing announced: unknown
  REQUIRE(peers.apply("a", own.whole()) == PeerHoldings::Outcome::changed);
  for (uint64_t k : {1, 2, 3}) CHECK(peers.filter("a")->may_hold(k));

  auto delta = own.stored(4);
  REQUIRE(delta);
  CHECK(delta->added_size() == 1);
  CHECK(delta->filter().empty());  // O(1) bytes per change, not the filter
  CHECK_FALSE(own.stored(4));      // already held: nothing to say
  REQUIRE(peers.apply("a", *delta) == PeerHoldings::Outcome::changed);
  CHECK(peers.filter("a")->may_hold(4));

  // A delta is lost; the next one does not apply to what the peer has.
  REQUIRE(own.stored(5));
  auto after_gap = own.stored(6);
  CHECK(peers.apply("a", *after_gap) == PeerHoldings::Outcome::want_whole);
  CHECK(peers.filter("a") == nullptr);  // unknown: asked like a peer that announced nothing
  CHECK(peers.apply("a", *own.stored(7)) == PeerHoldings::Outcome::unchanged);  // asked once
  REQUIRE(peers.apply("a", own.whole()) == PeerHoldings::Outcome::changed);
  for (uint64_t k : {1, 2, 3, 4, 5, 6, 7}) CHECK(peers.filter("a")->may_hold(k));
}

TEST_CASE("a summary never told what it holds still sends deltas, never a delta that reads as a whole") {
  HoldingsSummary fresh;  // a restarted core before set_held_blobs
  PeerHoldings peers;
  REQUIRE(peers.apply("a", fresh.whole()) == PeerHoldings::Outcome::changed);
  auto first = fresh.stored(9);
  REQUIRE(first);
  CHECK(first->base_version() != 0);
  REQUIRE(peers.apply("a", *first) == PeerHoldings::Outcome::changed);
  CHECK(peers.filter("a")->may_hold(9));
}

TEST_CASE("a summary rebuilds its filter when it outgrows it, and after many removals") {
  HoldingsSummary own;
  own.reset({});
  const auto keys = random_keys(5000, 3);
  size_t wholes = 0;
  PeerHoldings peers;
  peers.apply("a", own.whole());
  for (auto k : keys) {
    auto update = own.stored(k);
    REQUIRE(update);
    wholes += update->base_version() == 0;
    REQUIRE(peers.apply("a", *update) == PeerHoldings::Outcome::changed);
  }
  CHECK(wholes >= 4);  // grown from 256 blobs past 512, 1024, 2048 and 4096
  CHECK(wholes <= 6);
  for (auto k : keys) REQUIRE(peers.filter("a")->may_hold(k));

  // Removed blobs stay claimed until enough are gone to rebuild without them.
  std::optional<wire::HoldingsUpdate> rebuilt;
  size_t removed = 0;
  for (auto k : keys) {
    ++removed;
    if ((rebuilt = own.removed(k))) break;
  }
  REQUIRE(rebuilt);
  CHECK(removed > 64);
  peers.apply("a", *rebuilt);
  size_t still_claimed = 0;
  for (size_t i = 0; i < removed; ++i) still_claimed += peers.filter("a")->may_hold(keys[i]);
  CHECK(still_claimed < removed / 20);
  for (size_t i = removed; i < keys.size(); ++i) REQUIRE(peers.filter("a")->may_hold(keys[i]));
}

TEST_CASE("two members exchange holdings: the whole on contact, each stored blob at once, a gap repaired") {
  site::SiteCore a(member("a"), site::CoreOptions{}, 1, nullptr);
  site::SiteCore b(member("b"), site::CoreOptions{}, 2, nullptr);
  a.set_held_blobs({11, 12});
  b.set_held_blobs({21});
  wire::Envelope hello_from_b;
  hello_from_b.set_sender("b");
  *hello_from_b.mutable_hello() = member("b");
  auto fx = a.receive(hello_from_b, 1000);  // a hears b for the first time
  auto whole = holdings_to(fx, "b");
  REQUIRE(whole.size() == 1);
  auto seen = b.receive(whole[0], 1000);
  CHECK(seen.holdings_changed == std::vector<std::string>{"a"});
  REQUIRE(b.holdings_of("a"));
  CHECK(b.holdings_of("a")->may_hold(11));
  CHECK(b.holdings_of("a")->may_hold(12));
  CHECK_FALSE(b.holdings_of("a")->may_hold(21));

  // A blob stored on a: every live peer is told in the same step.
  auto stored = a.blob_stored(13, 1100);
  auto delta = holdings_to(stored, "b");
  REQUIRE(delta.size() == 1);
  b.receive(delta[0], 1100);
  CHECK(b.holdings_of("a")->may_hold(13));

  // Lost: the next delta finds a gap; b asks for the whole and a sends it.
  a.blob_stored(14, 1200);
  auto asked = b.receive(holdings_to(a.blob_stored(15, 1200), "b")[0], 1200);
  CHECK(b.holdings_of("a") == nullptr);
  auto ask = holdings_to(asked, "a");
  REQUIRE(ask.size() == 1);
  CHECK(ask[0].holdings().want_whole());
  auto answer = holdings_to(a.receive(ask[0], 1200), "b");
  REQUIRE(answer.size() == 1);
  b.receive(answer[0], 1200);
  for (uint64_t k : {11, 12, 13, 14, 15}) CHECK(b.holdings_of("a")->may_hold(k));
}

TEST_CASE("a member silent long enough loses its filter, and on its return both sides exchange the whole") {
  site::SiteCore a(member("a"), site::CoreOptions{}, 1, nullptr);
  site::SiteCore b(member("b"), site::CoreOptions{}, 2, nullptr);
  a.set_held_blobs({11});
  wire::Envelope hello_from_a;
  hello_from_a.set_sender("a");
  *hello_from_a.mutable_hello() = member("a");
  wire::Envelope hello_from_b = hello_from_a;
  hello_from_b.set_sender("b");
  *hello_from_b.mutable_hello() = member("b");
  b.receive(hello_from_a, 1000);
  b.receive(holdings_to(a.receive(hello_from_b, 1000), "b")[0], 1000);
  REQUIRE(b.holdings_of("a"));

  // a stores a blob while b cannot hear it: the delta is lost, a goes suspect on b.
  a.blob_stored(12, 1500);
  bool dropped = false;
  for (uint64_t t = 1250; t <= 5000; t += 250) {
    auto fx = b.tick(t);
    dropped = dropped || std::count(fx.holdings_changed.begin(), fx.holdings_changed.end(), "a") > 0;
  }
  CHECK(dropped);
  CHECK(b.holdings_of("a") == nullptr);  // unknown: asked, not trusted stale

  // a is heard again: b sends its own whole and asks for a's.
  auto back = holdings_to(b.receive(hello_from_a, 5100), "a");
  REQUIRE(back.size() == 2);
  CHECK_FALSE(back[0].holdings().want_whole());
  REQUIRE(back[1].holdings().want_whole());
  auto whole = holdings_to(a.receive(back[1], 5100), "b");
  REQUIRE(whole.size() == 1);
  b.receive(whole[0], 5100);
  REQUIRE(b.holdings_of("a"));
  CHECK(b.holdings_of("a")->may_hold(11));
  CHECK(b.holdings_of("a")->may_hold(12));
}
