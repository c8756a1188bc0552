// Mirror, site data plane: partial blobs on disk. A blob being assembled
// from chunks lives in a staging file with a chunk journal beside it; after
// a restart every journaled chunk is re-verified and kept, and partial blobs
// nobody assembles are dropped after a while. Chunked fetches are in
// site_fetch.cc, peers' blobs in peer_blobs.cc.
#include <sys/stat.h>

#include <set>

#include "base/log.h"
#include "base/file_io.h"
#include "dataplane/site_blob.h"
#include "site/chunk_plan.h"

namespace ep {

using namespace site_fetch;

namespace {
// "chunks-<32 hex of the digest>-<random>": found again by digest on resume.
std::string staging_prefix_for(const Digest& d) { return "chunks-" + std::string(d.hex().substr(0, 32)) + "-"; }
}  // namespace

// Whether a blob of `size` bytes, of which the partial file `fd` holds a
// part, can still be completed in the data dir's free space.
bool Mirror::fits_on_disk(int fd, uint64_t size) const {
  struct stat st {};
  const uint64_t have = ::fstat(fd, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  const uint64_t free = blobs_.free_bytes();
  return size <= have || size - have <= free;
}

void Mirror::enable_site(std::shared_ptr<site::PeerDirectory> peers, std::shared_ptr<transfer::ChunkClient> client,
                         std::string self_name, uint64_t chunk_size) {
  peers_ = std::move(peers);
  chunk_client_ = std::move(client);
  self_name_ = std::move(self_name);
  chunk_size_ = chunk_size;
  resume_partial_blobs();
}

std::vector<Mirror::Partial> Mirror::partial_blobs() {
  std::vector<Partial> out;
  std::lock_guard lock(mu_);
  for (const auto& [digest, sb] : site_blobs_) {
    Partial p{digest, sb->size, 0};
    std::lock_guard blob_lock(sb->mu);
    for (uint64_t i = 0; i < sb->have.size(); ++i)
      if (sb->have[i]) p.present += site::chunk_range(sb->size, sb->chunk_size, i).length;
    out.push_back(p);
  }
  for (const auto& [digest, weak] : inflight_)
    if (auto fetch = weak.lock(); fetch && !site_blobs_.count(digest)) {
      out.push_back(Partial{digest, fetch->size_known(), fetch->readable()});
    }
  return out;
}

std::vector<std::shared_ptr<Mirror::SiteBlob>> Mirror::take_idle_site_blobs() {
  // Chunks fetched for peers, or resumed, that no pull here ever assembled:
  // after a while nobody is coming for them; free their disk.
  const auto now = std::chrono::steady_clock::now();
  std::vector<std::shared_ptr<SiteBlob>> idle;
  for (auto it = site_blobs_.begin(); it != site_blobs_.end();) {
    auto fetch = inflight_.find(it->first);
    bool assembling = fetch != inflight_.end() && !fetch->second.expired();
    if (!assembling && now - it->second->last_used > kIdleSiteBlob) {
      idle.push_back(it->second);
      it = site_blobs_.erase(it);
    } else {
      ++it;
    }
  }
  return idle;
}

void Mirror::remove_site_blob_files(const SiteBlob& sb) {
  blobs_.remove_staging(sb.staging_id);
  blobs_.remove_staging(journal_id(sb.staging_id));
}

std::shared_ptr<Mirror::SiteBlob> Mirror::make_site_blob(const Digest& digest, uint64_t size) {
  auto sb = std::make_shared<SiteBlob>(digest);
  auto staging_id = random_id(staging_prefix_for(digest));
  if (!staging_id) return nullptr;
  sb->staging_id = *staging_id;
  auto fd = blobs_.open_staging(sb->staging_id, /*create=*/true);
  if (!fd) return nullptr;
  sb->fd = std::move(*fd);
  sb->size_chunks(size, chunk_size_);
  // Without a journal the blob still assembles; it just cannot resume.
  if (auto jfd = blobs_.open_staging(journal_id(sb->staging_id), /*create=*/true))
    sb->journal = ChunkJournal::create(std::move(*jfd), digest, size, chunk_size_);
  return sb;
}

std::shared_ptr<Mirror::SiteBlob> Mirror::site_blob(const Digest& digest, uint64_t size) {
  auto existing = [&]() -> std::optional<std::shared_ptr<SiteBlob>> {  // caller holds mu_
    auto it = site_blobs_.find(digest.str());
    if (it == site_blobs_.end()) return std::nullopt;
    it->second->last_used = std::chrono::steady_clock::now();
    return it->second->size == size ? it->second : nullptr;
  };
  std::vector<std::shared_ptr<SiteBlob>> idle;
  std::optional<std::shared_ptr<SiteBlob>> found;
  {
    std::lock_guard lock(mu_);
    idle = take_idle_site_blobs();
    found = existing();
  }
  for (const auto& sb : idle) remove_site_blob_files(*sb);
  if (found) return *found;
  auto fresh = make_site_blob(digest, size);
  if (!fresh) return nullptr;
  {
    std::lock_guard lock(mu_);
    found = existing();
    if (!found) {
      site_blobs_[digest.str()] = fresh;
      return fresh;
    }
  }
  remove_site_blob_files(*fresh);  // another thread made one meanwhile: that one is used
  return *found;
}

void Mirror::resume_partial_blobs() {
  std::set<std::string> ids;
  for (auto& id : blobs_.list_staging())
    if (id.rfind("chunks-", 0) == 0) ids.insert(id);
  for (const auto& id : ids) {
    if (is_journal_id(id)) continue;
    auto data = blobs_.open_staging(id, false);
    auto journal = ids.count(journal_id(id)) ? blobs_.open_staging(journal_id(id), false)
                                             : Result<UniqueFd>(Status{Errc::blob_upload_unknown, "no journal"});
    std::optional<ChunkJournal::Contents> contents;
    if (data && journal) contents = ChunkJournal::read(journal->get());
    auto digest = contents ? Digest::parse(contents->blob) : Result<Digest>(Status{Errc::bad_request, ""});
    bool duplicate = false;
    if (digest) {
      std::lock_guard lock(mu_);
      duplicate = site_blobs_.count(digest->str()) > 0;  // two partial copies: keep one
    }
    // A blob that could not fit in the data dir any more (or a journal that
    // says so after a torn write) is not worth resuming, and must not size
    // this node's memory: its chunk map is allocated from that size.
    const bool fits = contents && data && fits_on_disk(data->get(), contents->size);
    if (!digest || !fits || contents->chunk_size != chunk_size_ || id.rfind(staging_prefix_for(*digest), 0) != 0 ||
        duplicate) {
      blobs_.remove_staging(id);  // unusable: start over when it is asked for again
      blobs_.remove_staging(journal_id(id));
      continue;
    }
    auto sb = std::make_shared<SiteBlob>(*digest);
    sb->staging_id = id;
    sb->fd = std::move(*data);
    sb->size_chunks(contents->size, contents->chunk_size);
    const uint64_t n = sb->have.size();
    // Only chunks whose bytes still match their recorded digest count.
    std::unique_ptr<char[]> buffer(new char[sb->chunk_size]);
    uint64_t resumed = 0;
    for (const auto& [index, chunk_digest] : contents->chunks) {
      auto range = site::chunk_range(sb->size, sb->chunk_size, index);
      if (!pread_exact(sb->fd.get(), buffer.get(), range.length, range.offset, "a chunk")) continue;
      if (ep::chunk_digest(std::string_view(buffer.get(), range.length)) != chunk_digest) continue;
      sb->have[index] = 1;
      sb->chunk_digests[index] = chunk_digest;
      ++resumed;
    }
    // A fresh journal listing what survived.
    sb->journal = ChunkJournal::create(std::move(*journal), *digest, sb->size, sb->chunk_size);
    for (uint64_t i = 0; i < n && sb->journal; ++i)
      if (sb->have[i]) sb->journal->record(i, sb->chunk_digests[i]);
    log_info("mirror", "resuming " + digest->str() + " from " + std::to_string(resumed) + " of " + std::to_string(n) +
                           " verified chunks");
    std::lock_guard lock(mu_);
    site_blobs_[digest->str()] = std::move(sb);
  }
}

void Mirror::mark_present(SiteBlob& sb, uint64_t index, const std::string& digest) {
  sb.have[index] = 1;
  sb.chunk_digests[index] = digest;
  ++holdings_version_;
}

void Mirror::journal_chunk(const SiteBlob& sb, uint64_t index, const std::string& digest) {
  // A crash before this line only costs the chunk's fetch again after a restart.
  if (sb.journal) sb.journal->record(index, digest);
}

}  // namespace ep
