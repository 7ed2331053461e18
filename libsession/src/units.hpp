// Parsing of human units on command lines: durations ("200ms", "5s", "2m", "1h", "1500us") and
// sizes ("64M", "1G", "4096", "64KiB"). Shared by session-broker and sessionctl.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

#include "clock.hpp"

namespace sessionbroker::detail {

inline std::optional<std::pair<std::uint64_t, std::string_view>> split_number(std::string_view s) {
  std::size_t i = 0;
  std::uint64_t n = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    if (n > (UINT64_MAX - 9) / 10) return std::nullopt;
    n = n * 10 + static_cast<std::uint64_t>(s[i++] - '0');
  }
  if (i == 0) return std::nullopt;
  return std::pair{n, s.substr(i)};
}

// The longest duration parse_duration accepts, in milliseconds: what still counts in nanoseconds
// (about 292 years), so that every later conversion (to a deadline, to nanoseconds) is exact.
inline constexpr std::uint64_t kMaxDurationMs =
    std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::nanoseconds::max()).count();

// Rejects (nullopt) a duration longer than kMaxDurationMs rather than wrapping it into a short one.
inline std::optional<std::chrono::milliseconds> parse_duration(std::string_view s) {
  auto p = split_number(s);
  if (!p) return std::nullopt;
  auto [n, unit] = *p;
  std::uint64_t ms = 0;
  if (unit == "ms") ms = n;
  else if (unit == "s" || unit.empty()) ms = saturating_mul(n, 1000);
  else if (unit == "m" || unit == "min") ms = saturating_mul(n, 60'000);
  else if (unit == "h") ms = saturating_mul(n, 3'600'000);
  else if (unit == "us") ms = n / 1000;  // whole milliseconds, rounded down
  else return std::nullopt;
  if (ms > kMaxDurationMs) return std::nullopt;
  return std::chrono::milliseconds(static_cast<std::chrono::milliseconds::rep>(ms));
}

inline std::optional<std::uint64_t> parse_size(std::string_view s) {
  auto p = split_number(s);
  if (!p) return std::nullopt;
  auto [n, unit] = *p;
  std::uint64_t mult = 1;
  if (unit.empty() || unit == "B") mult = 1;
  else if (unit == "K" || unit == "KiB" || unit == "k") mult = 1ull << 10;
  else if (unit == "M" || unit == "MiB") mult = 1ull << 20;
  else if (unit == "G" || unit == "GiB") mult = 1ull << 30;
  else return std::nullopt;
  if (n > UINT64_MAX / mult) return std::nullopt;
  return n * mult;
}

}  // namespace sessionbroker::detail
