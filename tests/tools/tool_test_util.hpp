// Small helpers the sessionctl and broker tool tests share: private segment names, /dev/shm
// checks and parsing what `sessionctl lock` prints.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace sbtest {

// A segment name no other test (nor another run of this one) uses: sbtest-<kind>-<pid>-<n>.
inline std::string unique_segment(std::string_view kind) {
  static std::atomic<int> n{0};
  return fmt::format("sbtest-{}-{}-{}", kind, getpid(), n++);
}

inline bool segment_exists(const std::string& name) {
  struct stat st {};
  return stat(("/dev/shm/" + name).c_str(), &st) == 0;
}

// "token=123" -> 123; 0 when the line has another shape.
inline std::uint64_t parse_token(const std::optional<std::string>& line) {
  if (!line || line->rfind("token=", 0) != 0) return 0;
  return std::stoull(line->substr(6));
}

inline bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

}  // namespace sbtest
