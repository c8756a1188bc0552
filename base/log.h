// The node's one logger (one line per event on standard error) and the
// guard every thread entry point and handler boundary uses.
//
// Thread-safe: each line is written with a single write(2), so lines from
// different threads never interleave. Text that came from the network goes
// through ep::printable() before it is logged.
#pragma once

#include <string>
#include <string_view>

#include "base/error.h"

namespace ep {

// Writes "edgepier: <message>\n".
void log_line(std::string_view message);

// The exception being handled, as printable text. Call only in a catch block.
std::string current_exception_text();

// Logs the exception being handled as an internal error in `where` and
// returns it as an io_error Status. Call only in a catch block.
Status internal_error(std::string_view where);

// Runs `work` (returning Status); an exception ends that one piece of work
// as an io_error Status with one log line, never std::terminate.
template <class Work>
Status guarded(std::string_view where, Work&& work) noexcept {
  try {
    return work();
  } catch (...) {
    return internal_error(where);
  }
}

}  // namespace ep
