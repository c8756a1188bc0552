// The node's one logger (spdlog, standard error) and the guard every thread
// entry point and handler boundary uses.
//
// One line per event, naming its component ("site", "mirror", "peer",
// "store", "http", "node", "access"). Format and threshold are set once by
// configure_logging() in main(), before any other thread starts; after that
// every function here is safe from any thread (spdlog's stderr sink writes
// each line under its own mutex, so lines never interleave). Text that came
// from the network goes through ep::printable() before it is logged; the
// JSON format escapes every field.
#pragma once

#include <string>
#include <string_view>

#include "base/error.h"

namespace ep {

enum class LogLevel { trace, debug, info, warning, error };

// level: trace|debug|info|warning|error; format: text|json. A bad value is
// a config_invalid Status naming the accepted values.
Status configure_logging(std::string_view level, std::string_view format);

bool log_enabled(LogLevel level);
void log_event(LogLevel level, std::string_view component, std::string_view message) noexcept;

inline void log_debug(std::string_view component, std::string_view message) {
  log_event(LogLevel::debug, component, message);
}
inline void log_info(std::string_view component, std::string_view message) {
  log_event(LogLevel::info, component, message);
}
inline void log_warning(std::string_view component, std::string_view message) {
  log_event(LogLevel::warning, component, message);
}
inline void log_error(std::string_view component, std::string_view message) {
  log_event(LogLevel::error, component, message);
}

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
