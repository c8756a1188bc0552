#include "site/chunk_plan.h"

#include <algorithm>

namespace ep::site {

namespace {
uint64_t mix(uint64_t x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
uint64_t fnv(const std::string& s, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}
}  // namespace

uint64_t chunk_count(uint64_t blob_size, uint64_t chunk_size) {
  // Not (size + chunk_size - 1) / chunk_size: near 2^64 that wraps to 0.
  return blob_size == 0 ? 1 : blob_size / chunk_size + (blob_size % chunk_size != 0);
}

ChunkRange chunk_range(uint64_t blob_size, uint64_t chunk_size, uint64_t index) {
  uint64_t offset = index * chunk_size;
  return {offset, offset >= blob_size ? 0 : std::min(chunk_size, blob_size - offset)};
}

std::vector<std::string> rendezvous_order(const std::string& digest, uint64_t index,
                                          std::vector<std::string> members) {
  const uint64_t key = mix(fnv(digest) ^ mix(index));
  std::sort(members.begin(), members.end(), [&](const std::string& a, const std::string& b) {
    uint64_t wa = mix(key ^ fnv(a)), wb = mix(key ^ fnv(b));
    return wa != wb ? wa > wb : a < b;
  });
  return members;
}

}  // namespace ep::site
