// GarbageCollector: removes what nothing needs any more.
//  - Blobs no stored manifest lists (after manifest deletes): once they have
//    stayed unreferenced and unread for gc-grace, so a blob pushed before
//    its manifest, or one a client is about to mount, is never taken.
//  - Upload sessions with no write for gc-grace, with their staged files.
// Partial blobs of the data plane are not touched (they resume), nor is
// anything a pin or a tag holds (their manifests are stored).
//
// Owned by the Node. Runs on the replicator's thread (every kPeriod) and on
// demand from the admin API's pool; one collection at a time: mu_ serializes
// them and guards what is remembered between runs (since when each blob has
// been unreferenced; in memory, so a restart only delays a removal).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "base/error.h"
#include "registry/registry.h"
#include "registry/uploads.h"
#include "storage/blob_store.h"

namespace ep {

class GarbageCollector {
 public:
  static constexpr std::chrono::minutes kPeriod{10};

  struct Item {
    std::string kind;  // "blob" or "upload"
    std::string id;    // digest, or upload id
    uint64_t bytes = 0;
    std::string reason;
    bool due = false;  // goes now (else still within gc-grace)
  };
  struct Report {
    std::vector<Item> items;
    uint64_t due_bytes = 0;
    uint64_t removed = 0;  // items removed by this run
  };

  GarbageCollector(Registry& registry, Uploads& uploads, BlobStore& blobs, std::chrono::milliseconds grace)
      : registry_(registry), uploads_(uploads), blobs_(blobs), grace_ms_(static_cast<uint64_t>(grace.count())) {}

  // What is garbage now, and (with remove) removes what is due.
  Result<Report> collect(bool remove);
  uint64_t grace_ms() const { return grace_ms_; }

 private:
  Status collect_blobs(bool remove, uint64_t now_ms, Report& report);
  Status collect_uploads(bool remove, uint64_t now_ms, Report& report);

  Registry& registry_;
  Uploads& uploads_;
  BlobStore& blobs_;
  const uint64_t grace_ms_;
  std::mutex mu_;
  std::map<std::string, uint64_t> unreferenced_since_;  // digest -> wall ms first seen unreferenced
};

}  // namespace ep
