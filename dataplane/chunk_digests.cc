#include "dataplane/chunk_digests.h"

#include <algorithm>

#include "base/file_io.h"
#include "base/log.h"

namespace ep {

std::string chunk_digest(std::string_view bytes) { return Digest::of(bytes).str(); }

std::shared_ptr<ChunkDigests::Entry> ChunkDigests::slot(const std::string& key) {
  auto& entry = entries_[key];
  if (!entry) {
    entry = std::make_shared<Entry>();
    lru_.push_front(key);
    entry->lru = lru_.begin();
    auto kept = entry;
    while (lru_.size() > capacity_) {
      entries_.erase(lru_.back());
      lru_.pop_back();
    }
    return kept;
  }
  lru_.splice(lru_.begin(), lru_, entry->lru);
  return entry;
}

void ChunkDigests::remember(const Digest& digest, uint64_t chunk_size, ChunkDigestList list) {
  std::shared_ptr<Entry> entry;
  {
    std::lock_guard lock(mu_);
    entry = slot(digest.str() + "/" + std::to_string(chunk_size));
  }
  std::lock_guard compute(entry->compute);
  entry->list = std::make_shared<const ChunkDigestList>(std::move(list));
}

Result<std::shared_ptr<const ChunkDigestList>> ChunkDigests::of(const Digest& digest, uint64_t chunk_size) {
  if (chunk_size == 0) return Status{Errc::bad_request, "chunk size 0"};
  const std::string key = digest.str() + "/" + std::to_string(chunk_size);
  std::shared_ptr<Entry> entry;
  {
    std::lock_guard lock(mu_);
    entry = slot(key);
  }
  std::lock_guard compute(entry->compute);
  if (entry->list) return entry->list;
  auto blob = blobs_.open(digest);
  if (!blob) return blob.status();
  // Read in pieces no larger than a chunk: memory stays bounded for any blob.
  auto list = std::make_shared<ChunkDigestList>();
  Sha256 whole;
  const uint64_t piece = std::min<uint64_t>(chunk_size, 1 << 20);
  std::unique_ptr<char[]> buffer(new char[piece]);
  for (uint64_t offset = 0; offset < blob->size;) {
    Sha256 chunk;
    const uint64_t end = std::min(blob->size, offset + chunk_size);
    while (offset < end) {
      const auto n = static_cast<size_t>(std::min(piece, end - offset));
      if (!pread_exact(blob->fd.get(), buffer.get(), n, offset, "a blob"))
        return Status{Errc::io_error, "short read of blob " + digest.str()};
      chunk.update(buffer.get(), n);
      whole.update(buffer.get(), n);
      offset += n;
    }
    list->push_back(chunk.finish().str());
  }
  if (whole.finish() != digest) {
    log_error("blobs", "stored blob " + digest.str() + " no longer matches its digest; removed");
    blobs_.remove(digest);
    return Status{Errc::io_error, "stored blob " + digest.str() + " is corrupt"};
  }
  entry->list = list;
  return entry->list;
}

}  // namespace ep
