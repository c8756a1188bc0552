// Site security: the shared site key and each node's identity key.
//
// Every control message is an Envelope signed with the sender's Ed25519
// identity key and sealed (XSalsa20-Poly1305 secretbox, random nonce) with a
// key derived from the site key. Without the site key a process can neither
// read nor forge a message, so it cannot join, read or change the index;
// tampered messages fail to open. A member's identity key is pinned on first
// contact, so one member cannot impersonate another. A replayed envelope is
// dropped: older than max_age by its age, within max_age by the caller's
// ReplayGuard (CRDT merges are idempotent, but a replayed leave or an old
// hello must not be applied again).
// Thread-safe after construction; the ReplayGuard passed to open() is the
// caller's (the site actor's).
#pragma once

#include <array>
#include <functional>
#include <optional>
#include <string>

#include "base/error.h"
#include "crdt/index.h"  // wire types
#include "site/replay_guard.h"

namespace ep::site {

// Reads a key written by `epctl keygen` (64 hex characters).
Result<std::string> load_site_key(const std::string& path);
// Loads <data-dir>/identity.key, creating it on first start.
struct Identity {
  std::string public_key;  // 32 bytes
  std::string secret_key;  // 64 bytes
};
Result<Identity> load_or_create_identity(const std::string& data_dir);

// A 32-byte key for one purpose, derived from the site key (BLAKE2b keyed).
std::array<unsigned char, 32> derive_site_subkey(const std::string& site_key, const std::string& purpose);

class Sealer {
 public:
  Sealer(const std::string& site_key, Identity identity, std::string self_name);

  std::string seal(const wire::Envelope& envelope) const;
  // Opens and checks a sealed message. `expected_key` is the pinned identity
  // key of the claimed sender (empty when not yet known: then the key in a
  // hello is accepted). Returns nullopt for anything that does not verify,
  // and for an envelope `replays` has already seen.
  std::optional<wire::Envelope> open(const std::string& sealed,
                                     const std::function<std::string(const std::string& sender)>& pinned_key,
                                     uint64_t now_ms, ReplayGuard& replays) const;
  const std::string& public_key() const { return identity_.public_key; }
  static constexpr uint64_t kMaxAgeMs = 30000;

 private:
  std::array<unsigned char, 32> control_key_{};
  Identity identity_;
  std::string self_;
};

}  // namespace ep::site
