// Fuzzes the control plane's sealed envelopes: site/security Sealer::open
// (secretbox open, wire::Sealed and wire::Envelope protobuf parses, sender
// and key checks, Ed25519 verify, age window) and the wire::Envelope parse.
// The Sealer has a fixed site key and identity (fuzz_fixtures.h). Input:
// the first byte picks what the rest is:
//   0: a sealed message as it comes off the wire (Sealer::open on it);
//   1: the plaintext inside the secretbox, a serialized wire::Sealed: the
//      harness seals it with the site's control key and opens it, so the
//      fuzzer reaches the protobuf and signature checks;
//   2: a serialized wire::Envelope: parsed, given our sender name, sealed
//      with Sealer::seal and opened again.
// The pinned key of "fuzz-node" is the Sealer's own; other senders are not
// pinned (a hello's or members list's key is then taken).
//
// Asserts: whatever opens was sent within kMaxAgeMs of now; an envelope we
// sealed opens to an equal message exactly when its sent_ms is in that
// window, never a second time (a replay), and never once a byte of the
// sealed text is flipped.
#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/util/message_differencer.h>
#include <sodium.h>

#include <cstdint>
#include <string>

#include "fuzz_check.h"
#include "fuzz_fixtures.h"

using namespace ep;

namespace {

const site::Sealer& sealer() {
  static const site::Sealer s(fuzz::site_key(), fuzz::identity(1), fuzz::kSelfName);
  return s;
}

std::string pinned(const std::string& sender) { return sender == fuzz::kSelfName ? sealer().public_key() : ""; }

// The Sealer's secretbox key, as derived in site/security.cc.
const std::array<unsigned char, 32>& control_key() {
  static const auto key = site::derive_site_subkey(fuzz::site_key(), "edgepier control plane v1");
  return key;
}

std::string secretbox(const std::string& plain) {
  std::string out(crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + plain.size(), '\0');
  auto* nonce = reinterpret_cast<unsigned char*>(out.data());  // all zeros: deterministic
  crypto_secretbox_easy(nonce + crypto_secretbox_NONCEBYTES, reinterpret_cast<const unsigned char*>(plain.data()),
                        plain.size(), nonce, control_key().data());
  return out;
}

bool in_window(uint64_t sent) {
  const uint64_t gap = sent > fuzz::kNowMs ? sent - fuzz::kNowMs : fuzz::kNowMs - sent;
  return gap <= site::Sealer::kMaxAgeMs;
}

std::optional<wire::Envelope> open(const std::string& sealed, site::ReplayGuard& replays) {
  auto envelope = sealer().open(sealed, &pinned, fuzz::kNowMs, replays);
  if (envelope) FUZZ_CHECK(in_window(envelope->sent_ms()));
  return envelope;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (sodium_init() < 0) __builtin_trap();
  google::protobuf::SetLogHandler(nullptr);  // no line per string field that is not UTF-8
  // The harness's secretbox must be the Sealer's, or mode 1 tests nothing.
  wire::Envelope probe;
  probe.set_sender(fuzz::kSelfName);
  const std::string sealed = sealer().seal(probe);
  std::string plain(sealed.size() - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES, '\0');
  const auto* nonce = reinterpret_cast<const unsigned char*>(sealed.data());
  FUZZ_CHECK(crypto_secretbox_open_easy(reinterpret_cast<unsigned char*>(plain.data()),
                                        nonce + crypto_secretbox_NONCEBYTES,
                                        sealed.size() - crypto_secretbox_NONCEBYTES, nonce, control_key().data()) == 0);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  site::ReplayGuard replays(site::Sealer::kMaxAgeMs, 64);  // one per input: inputs are independent
  switch (data[0] % 3) {
    case 0:
      (void)open(rest, replays);
      break;
    case 1:
      (void)open(secretbox(rest), replays);
      break;
    default: {
      wire::Envelope envelope;
      if (!envelope.ParseFromString(rest)) break;
      envelope.set_sender(fuzz::kSelfName);
      std::string sealed = sealer().seal(envelope);
      auto opened = open(sealed, replays);
      FUZZ_CHECK(opened.has_value() == in_window(envelope.sent_ms()));
      if (opened) FUZZ_CHECK(google::protobuf::util::MessageDifferencer::Equals(*opened, envelope));
      FUZZ_CHECK(!open(sealed, replays));  // the same bytes again are a replay
      sealed[rest.size() % sealed.size()] ^= 0x01;
      FUZZ_CHECK(!open(sealed, replays));
    }
  }
  return 0;
}
