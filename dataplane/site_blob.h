// Mirror internals shared by site_fetch.cc and peer_blobs.cc: a blob being
// assembled from chunks, and helpers of the chunk protocol. Not a public API.
//
// SiteBlob invariants: the staging file holds the chunks marked in `have`,
// each with the digest it verified against in `chunk_digests`; bytes of a
// chunk not marked are never read for a client or a peer. Guarded by `mu`.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/chunk_journal.h"
#include "dataplane/mirror.h"
#include "site/chunk_plan.h"

namespace ep {

struct Mirror::SiteBlob {
  explicit SiteBlob(Digest d) : digest(std::move(d)) {}
  // A blob of `blob_size` cut in `chunk_bytes` pieces, none present yet.
  void size_chunks(uint64_t blob_size, uint64_t chunk_bytes) {
    size = blob_size;
    chunk_size = chunk_bytes;
    const auto n = site::chunk_count(size, chunk_size);
    have.assign(n, 0);
    fetching.assign(n, 0);
    chunk_digests.assign(n, std::string());
  }
  Digest digest;
  std::string staging_id;
  UniqueFd fd;
  uint64_t size = 0, chunk_size = 0;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<uint8_t> have, fetching;
  std::vector<std::string> chunk_digests;  // of the chunks in `have`
  std::optional<ChunkJournal> journal;     // records `have` for a resume after restart
  bool pulling = false;                    // a local pull owns publishing it
  bool streaming_whole = false;            // an upstream that ignores Range is sending all of it here
  std::chrono::steady_clock::time_point last_used = std::chrono::steady_clock::now();  // guarded by Mirror::mu_
};

namespace site_fetch {
// The most a peer may stall (no bytes) before we go to the next source. A
// designated fetcher waiting on the uplink says so every 3 s (WORKING), so
// its bound only has to cover a few missed notes; giving up on a live
// fetcher would fetch its chunk over the uplink a second time. A holder
// serves from its disk: short, so a dead or stuck peer costs little.
// Once a holder has served chunks, its bound adapts: 4x its recent time per
// chunk, at least kMinStall (see Mirror::stall_bound).
constexpr auto kFetcherStall = std::chrono::seconds(15);
constexpr auto kHolderStall = std::chrono::seconds(3);
constexpr auto kMinStall = std::chrono::milliseconds(750);
// A partial blob no pull here is assembling is dropped after this long unused.
constexpr auto kIdleSiteBlob = std::chrono::minutes(10);
// A peer that sent a chunk that did not verify is used last for this long.
constexpr auto kPenalty = std::chrono::minutes(5);

constexpr std::string_view kJournalSuffix = "-journal";
inline std::string journal_id(const std::string& staging_id) { return staging_id + std::string(kJournalSuffix); }
inline bool is_journal_id(const std::string& id) {
  return id.size() > kJournalSuffix.size() && id.compare(id.size() - kJournalSuffix.size(), kJournalSuffix.size(),
                                                         kJournalSuffix) == 0;
}
// "<prefix><24 random hex digits>": staging ids never reused, so a blob
// published (its files renamed or removed) cannot race a new fetch of it.
// prefix + 24 random hex digits; nullopt if the kernel's random source failed.
std::optional<std::string> random_id(const std::string& prefix);

wire::ChunkRequest chunk_request(const Digest& digest, uint64_t index, uint64_t chunk_size, uint64_t blob_size);
}  // namespace site_fetch

}  // namespace ep
