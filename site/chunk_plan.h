// Chunk planning (pure): which member fetches which chunk from upstream.
//
// The designated fetcher of chunk i of blob B is the live member with the
// highest rendezvous hash of (B, i, member); every node computes the same
// order with no messages, so concurrent pulls fetch each chunk from upstream
// once, spread over all members, and when a member dies only its chunks move.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ep::site {

struct ChunkRange {
  uint64_t offset, length;
};

uint64_t chunk_count(uint64_t blob_size, uint64_t chunk_size);
ChunkRange chunk_range(uint64_t blob_size, uint64_t chunk_size, uint64_t index);

// Members ordered by descending rendezvous weight for (digest, index).
std::vector<std::string> rendezvous_order(const std::string& digest, uint64_t index,
                                          std::vector<std::string> members);

}  // namespace ep::site
