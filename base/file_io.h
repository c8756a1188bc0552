// Whole reads and writes at an offset, retried over EINTR and short
// transfers: the one place for the loops around pread(2)/pwrite(2).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "base/error.h"

namespace ep {

// Reads exactly `length` bytes at `offset`; io_error "short read of <what>" otherwise.
Status pread_exact(int fd, void* into, uint64_t length, uint64_t offset, const char* what);
// Writes all `length` bytes at `offset`; io_error "cannot write <what>: <errno text>" otherwise.
Status pwrite_all(int fd, const void* data, uint64_t length, uint64_t offset, const char* what);

}  // namespace ep
