// One line per event on stderr: "<UTC time> <LEVEL> <message>", as a service manager's journal wants.
#pragma once

#include <chrono>
#include <cstdio>

#include <fmt/chrono.h>
#include <fmt/format.h>

namespace sessionbroker::broker {

enum class Level { kDebug, kInfo, kWarn, kError };
inline bool g_verbose = false;

template <class... Args>
void log(Level level, fmt::format_string<Args...> f, Args&&... args) {
  if (level == Level::kDebug && !g_verbose) return;
  static constexpr const char* kNames[] = {"DEBUG", "INFO", "WARN", "ERROR"};
  const auto now = std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
  fmt::print(stderr, "{:%Y-%m-%dT%H:%M:%S}Z {} {}\n", now, kNames[static_cast<int>(level)],
             fmt::format(f, std::forward<Args>(args)...));
  std::fflush(stderr);
}

}  // namespace sessionbroker::broker
