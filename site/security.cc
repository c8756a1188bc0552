#include "site/security.h"

#include <sodium.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "base/file_io.h"

namespace ep::site {

Result<std::string> load_site_key(const std::string& path) {
  if (sodium_init() < 0) return Status{Errc::io_error, "libsodium failed to initialise"};
  std::ifstream in(path);
  if (!in) return Status{Errc::config_invalid, "cannot read site key file " + path};
  std::string hex;
  in >> hex;
  std::string key(32, '\0');
  size_t len = 0;
  if (hex.size() != 64 ||
      sodium_hex2bin(reinterpret_cast<unsigned char*>(key.data()), key.size(), hex.data(), hex.size(), nullptr, &len,
                     nullptr) != 0 ||
      len != 32)
    return Status{Errc::config_invalid, "site key file " + path + " must hold 64 hex characters (epctl keygen)"};
  return key;
}

Result<Identity> load_or_create_identity(const std::string& data_dir) {
  if (sodium_init() < 0) return Status{Errc::io_error, "libsodium failed to initialise"};
  auto path = (std::filesystem::path(data_dir) / "identity.key").string();
  Identity id;
  id.public_key.resize(crypto_sign_PUBLICKEYBYTES);
  id.secret_key.resize(crypto_sign_SECRETKEYBYTES);
  if (auto existing = read_whole_file(path)) {
    const std::string& sk = *existing;
    if (sk.size() != crypto_sign_SECRETKEYBYTES) return Status{Errc::config_invalid, "corrupt identity key " + path};
    id.secret_key = sk;
    crypto_sign_ed25519_sk_to_pk(reinterpret_cast<unsigned char*>(id.public_key.data()),
                                 reinterpret_cast<const unsigned char*>(sk.data()));
    return id;
  }
  crypto_sign_keypair(reinterpret_cast<unsigned char*>(id.public_key.data()),
                      reinterpret_cast<unsigned char*>(id.secret_key.data()));
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  ::chmod(path.c_str(), 0600);
  out << id.secret_key;
  if (!out.flush()) return Status{Errc::io_error, "cannot write identity key " + path};
  return id;
}

std::array<unsigned char, 32> derive_site_subkey(const std::string& site_key, const std::string& purpose) {
  std::array<unsigned char, 32> key{};
  crypto_generichash(key.data(), key.size(), reinterpret_cast<const unsigned char*>(purpose.data()), purpose.size(),
                     reinterpret_cast<const unsigned char*>(site_key.data()), site_key.size());
  return key;
}

Sealer::Sealer(const std::string& site_key, Identity identity, std::string self_name)
    : control_key_(derive_site_subkey(site_key, "edgepier control plane v1")), identity_(std::move(identity)),
      self_(std::move(self_name)) {}

std::string Sealer::seal(const wire::Envelope& envelope) const {
  wire::Sealed inner;
  inner.set_sender(self_);
  inner.set_envelope(envelope.SerializeAsString());
  std::string signature(crypto_sign_BYTES, '\0');
  crypto_sign_detached(reinterpret_cast<unsigned char*>(signature.data()), nullptr,
                       reinterpret_cast<const unsigned char*>(inner.envelope().data()), inner.envelope().size(),
                       reinterpret_cast<const unsigned char*>(identity_.secret_key.data()));
  inner.set_signature(signature);
  auto plain = inner.SerializeAsString();
  std::string out(crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + plain.size(), '\0');
  auto* nonce = reinterpret_cast<unsigned char*>(out.data());
  randombytes_buf(nonce, crypto_secretbox_NONCEBYTES);
  crypto_secretbox_easy(nonce + crypto_secretbox_NONCEBYTES, reinterpret_cast<const unsigned char*>(plain.data()),
                        plain.size(), nonce, control_key_.data());
  return out;
}

std::optional<wire::Envelope> Sealer::open(const std::string& sealed,
                                           const std::function<std::string(const std::string&)>& pinned_key,
                                           uint64_t now_ms, ReplayGuard& replays) const {
  if (sealed.size() < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES) return std::nullopt;
  const auto* nonce = reinterpret_cast<const unsigned char*>(sealed.data());
  std::string plain(sealed.size() - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES, '\0');
  if (crypto_secretbox_open_easy(reinterpret_cast<unsigned char*>(plain.data()), nonce + crypto_secretbox_NONCEBYTES,
                                 sealed.size() - crypto_secretbox_NONCEBYTES, nonce, control_key_.data()) != 0)
    return std::nullopt;  // not sealed with our site key, or tampered with
  wire::Sealed inner;
  wire::Envelope envelope;
  if (!inner.ParseFromString(plain) || !envelope.ParseFromString(inner.envelope())) return std::nullopt;
  if (envelope.sender() != inner.sender()) return std::nullopt;
  // The key to check against: the pinned one, or the one a first hello carries.
  std::string key = pinned_key(inner.sender());
  if (key.empty() && envelope.has_hello()) key = envelope.hello().identity_key();
  if (key.empty() && envelope.has_members())
    for (const auto& m : envelope.members().members())
      if (m.name() == envelope.sender()) key = m.identity_key();
  if (key.size() != crypto_sign_PUBLICKEYBYTES || inner.signature().size() != crypto_sign_BYTES) return std::nullopt;
  if (crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(inner.signature().data()),
                                  reinterpret_cast<const unsigned char*>(inner.envelope().data()),
                                  inner.envelope().size(), reinterpret_cast<const unsigned char*>(key.data())) != 0)
    return std::nullopt;
  uint64_t sent = envelope.sent_ms();
  if (sent + kMaxAgeMs < now_ms || sent > now_ms + kMaxAgeMs) return std::nullopt;  // replayed or far skewed
  if (!replays.first_sight(inner.signature(), sent, now_ms)) return std::nullopt;
  return envelope;
}

}  // namespace ep::site
