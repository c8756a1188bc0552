// Resuming partial blobs after a restart (Mirror::resume_partial_blobs), on
// a real data dir: what a crash leaves behind is kept when it can still be
// completed, and a journal that claims an impossible size is discarded
// instead of sizing the node's memory.
#include <catch2/catch.hpp>
#include <filesystem>
#include <unistd.h>

#include "base/digest.h"
#include "dataplane/chunk_digests.h"
#include "dataplane/chunk_journal.h"
#include "dataplane/mirror.h"
#include "dataplane/site_blob.h"
#include "registry/registry.h"
#include "site/peer_directory.h"
#include "storage/blob_store.h"
#include "storage/kv_store.h"

using namespace ep;

namespace {

constexpr uint64_t kChunk = 1 << 20;

// A partial blob as a crash leaves it: its first chunk written, journaled
// under `claimed_size`.
void leave_partial(BlobStore& blobs, const Digest& digest, uint64_t claimed_size) {
  const std::string id = "chunks-" + std::string(digest.hex().substr(0, 32)) + "-crashed";
  const std::string chunk(kChunk, 'c');
  auto data = blobs.open_staging(id, true);
  REQUIRE(data);
  REQUIRE(::pwrite(data->get(), chunk.data(), chunk.size(), 0) == static_cast<ssize_t>(chunk.size()));
  auto journal_fd = blobs.open_staging(site_fetch::journal_id(id), true);
  REQUIRE(journal_fd);
  auto journal = ChunkJournal::create(std::move(*journal_fd), digest, claimed_size, kChunk);
  REQUIRE(journal);
  REQUIRE(journal->record(0, chunk_digest(chunk)));
}

struct DataDir {
  std::filesystem::path path = std::filesystem::temp_directory_path() / ("ep-resume-" + std::to_string(::getpid()));
  std::unique_ptr<BlobStore> blobs;
  std::unique_ptr<KvStore> kv = make_memory_kv_store();
  DataDir() {
    std::filesystem::remove_all(path);
    auto opened = open_fs_blob_store(path.string());
    REQUIRE(opened);
    blobs = std::move(*opened);
  }
  ~DataDir() { std::filesystem::remove_all(path); }
  std::vector<Mirror::Partial> resumed() {
    Registry registry(*kv, *blobs);
    Mirror mirror(registry, *blobs, {}, "");
    mirror.enable_site(std::make_shared<site::PeerDirectory>(), nullptr, "n1", kChunk);
    return mirror.partial_blobs();
  }
};

}  // namespace

TEST_CASE("resume: a partial blob that can still be completed keeps its verified chunks") {
  DataDir dir;
  leave_partial(*dir.blobs, Digest::of("a blob of 3 MiB"), 3 * kChunk);
  auto partials = dir.resumed();
  REQUIRE(partials.size() == 1);
  CHECK(partials[0].size == 3 * kChunk);
  CHECK(partials[0].present == kChunk);
}

TEST_CASE("resume: a journal claiming more than the disk could ever hold is discarded, not allocated") {
  DataDir dir;
  leave_partial(*dir.blobs, Digest::of("a forged or torn journal"), uint64_t(1) << 62);
  CHECK(dir.resumed().empty());
  CHECK(dir.blobs->list_staging().empty());  // its files are gone too
}
