// Fixed keys, clock and randomness shared by the crypto harnesses
// (fuzz_envelope, fuzz_secure_channel) and make_seeds.cc, so that the seeds
// make_seeds writes (a sealed envelope, a secure-channel frame) open in the
// harness exactly as they did when written.
//
// FixedRandom replaces libsodium's random source with a seeded,
// per-thread splitmix64 stream: a harness run is deterministic (the
// ephemeral handshake keys and the session keys are the same every time),
// which libFuzzer needs to attribute coverage to inputs. Fuzzing only.
#pragma once

#include <sodium.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <string>

#include "site/security.h"
#include "transfer/secure_channel.h"

namespace fuzz {

// The site key (32 bytes), as load_site_key returns it.
inline std::string site_key() { return std::string(32, '\x5a'); }
// The secure channel's data key.
inline ep::transfer::DataKey data_key() {
  ep::transfer::DataKey key;
  key.fill(0xa5);
  return key;
}
// "Now" for Sealer::open; seeds are sealed with sent_ms = kNowMs.
constexpr uint64_t kNowMs = 1700000000000;
constexpr const char* kSelfName = "fuzz-node";

// A node identity from a fixed seed byte (Ed25519).
inline ep::site::Identity identity(unsigned char seed_byte) {
  unsigned char seed[crypto_sign_SEEDBYTES];
  std::memset(seed, seed_byte, sizeof seed);
  ep::site::Identity id;
  id.public_key.resize(crypto_sign_PUBLICKEYBYTES);
  id.secret_key.resize(crypto_sign_SECRETKEYBYTES);
  crypto_sign_seed_keypair(reinterpret_cast<unsigned char*>(id.public_key.data()),
                           reinterpret_cast<unsigned char*>(id.secret_key.data()), seed);
  return id;
}

class FixedRandom {
 public:
  // Call once, before anything else uses libsodium.
  static void install() {
    static randombytes_implementation impl = {&name, &random, nullptr, nullptr, &buf, nullptr};
    randombytes_set_implementation(&impl);
    if (sodium_init() < 0) __builtin_trap();
  }
  // Restarts this thread's stream.
  static void reset(uint64_t seed) { state() = seed; }

 private:
  static uint64_t& state() {
    thread_local uint64_t s = 0;
    return s;
  }
  static uint64_t next() {
    uint64_t z = (state() += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  static const char* name() { return "fuzz-fixed"; }
  static uint32_t random() { return static_cast<uint32_t>(next()); }
  static void buf(void* const out, const size_t size) {
    auto* p = static_cast<unsigned char*>(out);
    for (size_t i = 0; i < size; ++i) p[i] = static_cast<unsigned char>(next());
  }
};

// The secure channel harness's handshake streams: the client thread and the
// server (the harness's own thread) start from these seeds every run.
constexpr uint64_t kClientSeed = 1, kServerSeed = 2;

}  // namespace fuzz
