// Whole reads and writes at an offset, retried over EINTR and short
// transfers: the one place for the loops around pread(2)/pwrite(2); and a
// small file (a key, credentials, a configuration file) read whole.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "base/error.h"

namespace ep {

// Reads exactly `length` bytes at `offset`; io_error "short read of <what>" otherwise.
Status pread_exact(int fd, void* into, uint64_t length, uint64_t offset, const char* what);
// Writes all `length` bytes at `offset`; io_error "cannot write <what>: <errno text>" otherwise.
Status pwrite_all(int fd, const void* data, uint64_t length, uint64_t offset, const char* what);
// The bytes of the file at `path`; nullopt when it cannot be opened (the
// caller says what the file was for).
std::optional<std::string> read_whole_file(const std::string& path);

}  // namespace ep
