#include "site/holdings_filter.h"

#include <algorithm>

namespace ep::site {

namespace {

uint64_t mix(uint64_t x) {  // splitmix64's finalizer: the filter's second hash
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Filters are rebuilt at twice what is held, so a node that keeps storing
// rebuilds O(log n) times; small ones stay a few hundred bytes.
constexpr size_t kMinCapacity = 256;
constexpr uint32_t kMaxHashes = 16;

}  // namespace

uint64_t holdings_key(std::string_view digest) {
  auto colon = digest.find(':');
  auto hex = colon == std::string_view::npos ? std::string_view() : digest.substr(colon + 1, 16);
  uint64_t key = 0;
  bool ok = hex.size() == 16;
  for (char c : hex) {
    int v = hex_value(c);
    ok = ok && v >= 0;
    key = key << 4 | static_cast<uint64_t>(v < 0 ? 0 : v);
  }
  if (ok) return key;
  uint64_t fnv = 0xcbf29ce484222325ull;  // not a hex digest: any stable hash will do
  for (unsigned char c : digest) fnv = (fnv ^ c) * 0x100000001b3ull;
  return fnv;
}

HoldingsFilter HoldingsFilter::sized_for(size_t capacity) {
  HoldingsFilter f;
  f.bits_.assign(std::min((std::max(capacity, kMinCapacity) * kBitsPerBlob + 7) / 8, HoldingsFilter::kMaxBytes), '\0');
  return f;
}

std::optional<HoldingsFilter> HoldingsFilter::from_wire(std::string bits, uint32_t hashes) {
  if (bits.empty() || bits.size() > HoldingsFilter::kMaxBytes || hashes == 0 || hashes > kMaxHashes) return std::nullopt;
  HoldingsFilter f;
  f.bits_ = std::move(bits);
  f.hashes_ = hashes;
  return f;
}

// The i-th bit of `key` (double hashing: key + i * mix(key), odd step).
uint64_t HoldingsFilter::bit(uint64_t key, uint32_t i) const { return (key + i * (mix(key) | 1)) % (bits_.size() * 8); }

void HoldingsFilter::add(uint64_t key) {
  for (uint32_t i = 0; i < hashes_; ++i) {
    const uint64_t b = bit(key, i);
    bits_[b / 8] = static_cast<char>(static_cast<unsigned char>(bits_[b / 8]) | (1u << (b % 8)));
  }
}

bool HoldingsFilter::may_hold(uint64_t key) const {
  if (bits_.empty()) return false;
  for (uint32_t i = 0; i < hashes_; ++i) {
    const uint64_t b = bit(key, i);
    if (!((static_cast<unsigned char>(bits_[b / 8]) >> (b % 8)) & 1)) return false;
  }
  return true;
}

void HoldingsSummary::reset(const std::vector<uint64_t>& keys) {
  held_ = std::unordered_set<uint64_t>(keys.begin(), keys.end());
  ++version_;
  rebuild();
}

void HoldingsSummary::rebuild() {
  filter_ = HoldingsFilter::sized_for(held_.size() * 2);
  for (auto key : held_) filter_.add(key);
  removed_since_rebuild_ = 0;
}

std::optional<wire::HoldingsUpdate> HoldingsSummary::stored(uint64_t key) {
  if (!held_.insert(key).second) return std::nullopt;
  ++version_;
  if (held_.size() > filter_.capacity() && filter_.bits().size() < HoldingsFilter::kMaxBytes) {
    rebuild();
    return whole();
  }
  filter_.add(key);
  wire::HoldingsUpdate delta;
  delta.set_version(version_);
  delta.set_base_version(version_ - 1);
  delta.add_added(key);
  return delta;
}

std::optional<wire::HoldingsUpdate> HoldingsSummary::removed(uint64_t key) {
  if (!held_.erase(key)) return std::nullopt;
  // A removed blob stays in the filter (a false positive costs one probe);
  // once many have gone, a rebuild drops them.
  if (++removed_since_rebuild_ <= std::max<size_t>(64, held_.size() / 4)) return std::nullopt;
  ++version_;
  rebuild();
  return whole();
}

wire::HoldingsUpdate HoldingsSummary::whole() const {
  wire::HoldingsUpdate update;
  update.set_version(version_);
  update.set_filter(filter_.bits());
  update.set_hashes(filter_.hashes());
  return update;
}

PeerHoldings::Outcome PeerHoldings::apply(const std::string& peer, const wire::HoldingsUpdate& update) {
  auto& known = peers_[peer];
  if (update.base_version() == 0) {
    auto filter = HoldingsFilter::from_wire(update.filter(), update.hashes());
    if (!filter) {
      known = Known{};
      return Outcome::changed;
    }
    known = Known{update.version(), std::make_shared<const HoldingsFilter>(std::move(*filter)), false};
    return Outcome::changed;
  }
  if (!known.filter || known.version != update.base_version()) {
    // A gap: whatever we had may lack blobs; unknown until the whole arrives.
    const bool had = known.filter != nullptr, asked = known.asked;
    known = Known{0, nullptr, true};
    return asked ? (had ? Outcome::changed : Outcome::unchanged) : Outcome::want_whole;
  }
  auto next = std::make_shared<HoldingsFilter>(*known.filter);
  for (auto key : update.added()) next->add(key);
  known.filter = std::move(next);
  known.version = update.version();
  return Outcome::changed;
}

std::shared_ptr<const HoldingsFilter> PeerHoldings::filter(const std::string& peer) const {
  auto it = peers_.find(peer);
  return it == peers_.end() ? nullptr : it->second.filter;
}

}  // namespace ep::site
