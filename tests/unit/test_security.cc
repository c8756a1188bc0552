// Sealed control envelopes: what opens, what does not, and replays within
// the validity window (site/security.h, site/replay_guard.h).
#include <filesystem>
#include <random>
#include <catch2/catch.hpp>

#include "site/replay_guard.h"
#include "site/security.h"

using namespace ep;
namespace fs = std::filesystem;

namespace {

site::Identity make_identity() {
  std::random_device rd;
  auto dir = fs::temp_directory_path() / ("ep-unit-id-" + std::to_string(rd()));
  fs::create_directories(dir);
  auto identity = site::load_or_create_identity(dir.string());
  fs::remove_all(dir);
  REQUIRE(identity);
  return *identity;
}

wire::Envelope hello_from(const std::string& sender, const std::string& key, uint64_t sent_ms) {
  wire::Envelope envelope;
  envelope.set_sender(sender);
  envelope.set_sent_ms(sent_ms);
  envelope.mutable_hello()->set_name(sender);
  envelope.mutable_hello()->set_identity_key(key);
  return envelope;
}

}  // namespace

TEST_CASE("replay guard: an id is new once within its window, and expires with it") {
  site::ReplayGuard guard(1000, 100);
  CHECK(guard.first_sight("a", 5000, 5000));
  CHECK_FALSE(guard.first_sight("a", 5000, 5500));
  CHECK(guard.first_sight("b", 5000, 5500));
  CHECK(guard.replays_dropped() == 1);
  // Past sent + window the age check refuses it; the guard need not remember.
  CHECK(guard.first_sight("c", 7000, 7000));
  CHECK(guard.size() == 1);
}

TEST_CASE("replay guard: bounded; the ids closest to expiry go first") {
  site::ReplayGuard guard(1000, 3);
  CHECK(guard.first_sight("old", 100, 150));
  CHECK(guard.first_sight("mid", 200, 250));
  CHECK(guard.first_sight("new", 300, 350));
  CHECK(guard.first_sight("newest", 400, 450));
  CHECK(guard.size() == 3);
  CHECK_FALSE(guard.first_sight("mid", 200, 460));
  CHECK_FALSE(guard.first_sight("newest", 400, 460));
}

TEST_CASE("sealer: a sealed envelope opens once; a replay of the same bytes or a re-seal is dropped") {
  std::string site_key(32, 'k');
  auto alice = make_identity();
  site::Sealer sender(site_key, alice, "alice");
  site::Sealer receiver(site_key, make_identity(), "bob");
  site::ReplayGuard replays(site::Sealer::kMaxAgeMs, 1024);
  auto no_pin = [](const std::string&) { return std::string(); };

  auto envelope = hello_from("alice", alice.public_key, 10'000'000);
  auto sealed = sender.seal(envelope);
  auto opened = receiver.open(sealed, no_pin, 10'000'100, replays);
  REQUIRE(opened);
  CHECK(opened->hello().name() == "alice");
  CHECK_FALSE(receiver.open(sealed, no_pin, 10'000'200, replays));
  // The same envelope sealed again (a new nonce, the same signature).
  CHECK_FALSE(receiver.open(sender.seal(envelope), no_pin, 10'000'300, replays));
  CHECK(replays.replays_dropped() == 2);
  // A later heartbeat is a new envelope and opens.
  CHECK(receiver.open(sender.seal(hello_from("alice", alice.public_key, 10'001'000)), no_pin, 10'001'000, replays));
}

TEST_CASE("sealer: too old, another site's key, a flipped byte and an impostor do not open") {
  std::string site_key(32, 'k');
  auto alice = make_identity();
  auto mallory = make_identity();
  site::Sealer sender(site_key, alice, "alice");
  site::Sealer receiver(site_key, make_identity(), "bob");
  site::ReplayGuard replays(site::Sealer::kMaxAgeMs, 1024);
  auto pin_alice = [&](const std::string& name) { return name == "alice" ? alice.public_key : std::string(); };

  auto sealed = sender.seal(hello_from("alice", alice.public_key, 10'000'000));
  CHECK_FALSE(receiver.open(sealed, pin_alice, 10'000'000 + site::Sealer::kMaxAgeMs + 1, replays));
  site::Sealer other_site(std::string(32, 'x'), make_identity(), "bob");
  CHECK_FALSE(other_site.open(sealed, pin_alice, 10'000'000, replays));
  auto flipped = sealed;
  flipped[flipped.size() / 2] ^= 1;
  CHECK_FALSE(receiver.open(flipped, pin_alice, 10'000'000, replays));
  site::Sealer impostor(site_key, mallory, "alice");
  CHECK_FALSE(receiver.open(impostor.seal(hello_from("alice", mallory.public_key, 10'000'000)), pin_alice,
                            10'000'000, replays));
  // None of these was remembered: the genuine one still opens.
  CHECK(receiver.open(sealed, pin_alice, 10'000'000, replays));
}
