// ChunkJournal: the record, next to a partially assembled blob's staging
// file, of which chunks it holds and the digest each verified against, so a
// restarted node resumes from its verified chunks instead of starting over.
//
// Text, append-only: a header line "<blob digest> <size> <chunk size>", then
// one "<index> <chunk digest>" line per stored chunk. Entries are appended
// after the chunk's bytes were written; nothing is fsync'd, because resuming
// re-verifies every listed chunk against its digest and drops what does not
// match (a torn write after a power cut costs a refetch, never a bad byte).
// One owner at a time (the SiteBlob's mutex).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "base/digest.h"
#include "base/fd.h"

namespace ep {

class ChunkJournal {
 public:
  struct Contents {
    std::string blob;  // digest string
    uint64_t size = 0, chunk_size = 0;
    std::map<uint64_t, std::string> chunks;  // index -> chunk digest (last entry wins)
  };

  // Starts a journal in `fd` (truncating it).
  static std::optional<ChunkJournal> create(UniqueFd fd, const Digest& blob, uint64_t size, uint64_t chunk_size);
  // Reads a journal; nullopt when it is not one (then it should be discarded).
  static std::optional<Contents> read(int fd);
  // Continues an existing journal (after read()).
  static ChunkJournal append_to(UniqueFd fd);

  // Thread-safe: one write(2) of one line.
  bool record(uint64_t index, const std::string& chunk_digest) const;

 private:
  explicit ChunkJournal(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace ep
