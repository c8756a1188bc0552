// Fuzzes the chunk journal reader (dataplane/chunk_journal: ChunkJournal::
// read), which a restarting node runs on every journal left next to a
// partial blob. Input: the journal file's bytes (a header line "<blob
// digest> <size> <chunk size>", then "<index> <chunk digest>" lines).
//
// Asserts, for a journal that reads: the blob digest and every chunk digest
// parse; the chunk size is not 0; every index names a chunk inside the blob.
// And the writer and the reader agree: a journal written with create() and
// record() for the contents read (plus the blob's last chunk) reads back
// as exactly that.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "dataplane/chunk_journal.h"
#include "fuzz_check.h"

using namespace ep;

namespace {

UniqueFd memory_file(const uint8_t* data, size_t size) {
  UniqueFd fd(::memfd_create("journal", MFD_CLOEXEC));
  if (!fd.valid()) __builtin_trap();
  for (size_t done = 0; done < size;) {
    auto n = ::write(fd.get(), data + done, size - done);
    if (n <= 0) __builtin_trap();
    done += static_cast<size_t>(n);
  }
  return fd;
}

// ceil(size / chunk_size), without overflow; an empty blob is one empty chunk.
uint64_t chunk_count(uint64_t size, uint64_t chunk_size) {
  return size == 0 ? 1 : size / chunk_size + (size % chunk_size != 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  UniqueFd fd = memory_file(data, size);
  auto contents = ChunkJournal::read(fd.get());
  if (!contents) return 0;
  auto blob = Digest::parse(contents->blob);
  FUZZ_CHECK(blob.ok());
  FUZZ_CHECK(contents->chunk_size > 0);
  const uint64_t chunks = chunk_count(contents->size, contents->chunk_size);
  for (const auto& [index, digest] : contents->chunks) {
    FUZZ_CHECK(index < chunks);
    FUZZ_CHECK(Digest::parse(digest).ok());
  }

  // What the node writes, it reads back.
  auto expected = contents->chunks;
  expected[chunks - 1] = "sha256:" + std::string(64, '0');
  UniqueFd rewritten = memory_file(data, 0);
  auto journal = ChunkJournal::create(UniqueFd(::dup(rewritten.get())), *blob, contents->size, contents->chunk_size);
  FUZZ_CHECK(journal.has_value());
  for (const auto& [index, digest] : expected) FUZZ_CHECK(journal->record(index, digest));
  auto back = ChunkJournal::read(rewritten.get());
  FUZZ_CHECK(back && back->blob == contents->blob && back->size == contents->size);
  FUZZ_CHECK(back->chunk_size == contents->chunk_size && back->chunks == expected);
  return 0;
}
