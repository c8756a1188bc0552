#include "base/log.h"

#include <spdlog/logger.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <array>
#include <atomic>
#include <nlohmann/json.hpp>

#include "base/json_text.h"

namespace ep {

namespace {

constexpr std::array<std::string_view, 5> kLevelNames = {"trace", "debug", "info", "warning", "error"};

spdlog::level::level_enum to_spdlog(LogLevel level) {
  switch (level) {
    case LogLevel::trace: return spdlog::level::trace;
    case LogLevel::debug: return spdlog::level::debug;
    case LogLevel::info: return spdlog::level::info;
    case LogLevel::warning: return spdlog::level::warn;
    case LogLevel::error: return spdlog::level::err;
  }
  return spdlog::level::info;
}

struct Logger {
  std::shared_ptr<spdlog::logger> sink_logger;
  std::atomic<bool> json{false};

  Logger() : sink_logger(std::make_shared<spdlog::logger>("edgepier", std::make_shared<spdlog::sinks::stderr_sink_mt>())) {
    set_format(false);
    sink_logger->set_level(spdlog::level::info);
    sink_logger->flush_on(spdlog::level::trace);  // every line reaches the journal or the pod log at once
  }
  void set_format(bool as_json) {
    json = as_json;
    // UTC with milliseconds; in JSON the message part is the rest of the object.
    sink_logger->set_formatter(std::make_unique<spdlog::pattern_formatter>(
        as_json ? R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l",%v})" : "%Y-%m-%dT%H:%M:%S.%eZ %l %v",
        spdlog::pattern_time_type::utc));
  }
};

Logger& logger() {
  static Logger instance;
  return instance;
}

}  // namespace

Status configure_logging(std::string_view level, std::string_view format) {
  size_t index = 0;
  while (index < kLevelNames.size() && kLevelNames[index] != level) ++index;
  if (index == kLevelNames.size())
    return Status{Errc::config_invalid, "setting edgepier.log-level: expected trace, debug, info, warning or error, got \"" +
                                            printable(level) + "\""};
  if (format != "text" && format != "json")
    return Status{Errc::config_invalid,
                  "setting edgepier.log-format: expected \"text\" or \"json\", got \"" + printable(format) + "\""};
  logger().sink_logger->set_level(to_spdlog(static_cast<LogLevel>(index)));
  logger().set_format(format == "json");
  return Status::Ok();
}

bool log_enabled(LogLevel level) { return logger().sink_logger->should_log(to_spdlog(level)); }

void log_event(LogLevel level, std::string_view component, std::string_view message) noexcept {
  try {
    auto& log = logger();
    if (!log.sink_logger->should_log(to_spdlog(level))) return;
    std::string line;
    if (log.json) {
      line = "\"component\":" + json_text(nlohmann::json(std::string(component))) +
             ",\"msg\":" + json_text(nlohmann::json(std::string(message)));
    } else {
      line.reserve(component.size() + message.size() + 2);
      line.append(component).append(": ").append(message);
    }
    log.sink_logger->log(to_spdlog(level), spdlog::string_view_t(line.data(), line.size()));
  } catch (...) {
    // Nowhere to log to; never fail the caller.
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
  log_error("node", message);
  return Status{Errc::io_error, message};
}

}  // namespace ep
