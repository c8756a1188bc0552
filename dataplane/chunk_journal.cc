#include "dataplane/chunk_journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <sstream>

#include "site/chunk_plan.h"

namespace ep {

namespace {
// A decimal number and nothing else: istream's >> would take "-1" for 2^64 - 1.
bool read_u64(std::istream& in, uint64_t& out) {
  std::string token;
  if (!(in >> token)) return false;
  auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), out);
  return ec == std::errc() && end == token.data() + token.size();
}

bool append(int fd, const std::string& line) {
  if (::lseek(fd, 0, SEEK_END) < 0) return false;
  for (size_t done = 0; done < line.size();) {
    auto n = ::write(fd, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}
}  // namespace

std::optional<ChunkJournal> ChunkJournal::create(UniqueFd fd, const Digest& blob, uint64_t size, uint64_t chunk_size) {
  if (::ftruncate(fd.get(), 0) != 0) return std::nullopt;
  if (!append(fd.get(), blob.str() + " " + std::to_string(size) + " " + std::to_string(chunk_size) + "\n"))
    return std::nullopt;
  return ChunkJournal(std::move(fd));
}

ChunkJournal ChunkJournal::append_to(UniqueFd fd) { return ChunkJournal(std::move(fd)); }

std::optional<ChunkJournal::Contents> ChunkJournal::read(int fd) {
  std::string text;
  char buffer[1 << 16];
  for (off_t offset = 0;;) {
    auto n = ::pread(fd, buffer, sizeof buffer, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::nullopt;
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
    offset += n;
    if (text.size() > (64u << 20)) return std::nullopt;  // not a journal of ours
  }
  std::istringstream in(text);
  Contents c;
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  std::istringstream header(line);
  if (!(header >> c.blob) || !read_u64(header, c.size) || !read_u64(header, c.chunk_size) || c.chunk_size == 0 ||
      !Digest::parse(c.blob))
    return std::nullopt;
  const uint64_t chunks = site::chunk_count(c.size, c.chunk_size);
  while (std::getline(in, line)) {
    if (in.eof() && !text.empty() && text.back() != '\n') break;  // torn last line
    std::istringstream entry(line);
    uint64_t index;
    std::string digest;
    if (!read_u64(entry, index) || !(entry >> digest) || index >= chunks || !Digest::parse(digest)) continue;
    c.chunks[index] = digest;
  }
  return c;
}

bool ChunkJournal::record(uint64_t index, const std::string& chunk_digest) const {
  return append(fd_.get(), std::to_string(index) + " " + chunk_digest + "\n");
}

}  // namespace ep
