#include "base/log.h"

#include <unistd.h>

#include <cerrno>
#include <exception>

#include "base/json_text.h"

namespace ep {

void log_line(std::string_view message) {
  std::string line = "edgepier: ";
  line.append(message);
  line.push_back('\n');
  size_t done = 0;
  while (done < line.size()) {
    auto n = ::write(STDERR_FILENO, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // nowhere to log to; never fail the caller
    done += static_cast<size_t>(n);
  }
}

std::string current_exception_text() {
  try {
    throw;
  } catch (const std::exception& e) {
    return printable(e.what());
  } catch (...) {
    return "unknown exception";
  }
}

Status internal_error(std::string_view where) {
  std::string message = "internal error in " + std::string(where) + ": " + current_exception_text();
  try {
    log_line(message);
  } catch (...) {
  }
  return Status{Errc::io_error, message};
}

}  // namespace ep
