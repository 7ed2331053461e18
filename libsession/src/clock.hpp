// Time sources shared by the library and the broker.
#pragma once

#include <cstdint>
#include <ctime>

namespace sessionbroker::detail {

inline std::uint64_t clock_ns(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}
inline std::uint64_t mono_ns() { return clock_ns(CLOCK_MONOTONIC); }
// Coarse (jiffy resolution) but a few ns: for idle-expiry hints on the thread-lock path.
inline std::uint64_t coarse_mono_ns() { return clock_ns(CLOCK_MONOTONIC_COARSE); }
inline std::uint64_t real_ns() { return clock_ns(CLOCK_REALTIME); }

// Saturating arithmetic for durations that come from users or the segment (a TTL, a revoke
// deadline): past UINT64_MAX the result stays UINT64_MAX, which reads as "never", instead of
// wrapping to a small number that reads as "at once". (C++26 has std::mul_sat; C++20 has none.)
inline constexpr std::uint64_t saturating_mul(std::uint64_t a, std::uint64_t b) {
  return b != 0 && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}
inline constexpr std::uint64_t saturating_add(std::uint64_t a, std::uint64_t b) {
  return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}
inline constexpr std::uint64_t ms_to_ns(std::uint64_t ms) { return saturating_mul(ms, 1'000'000); }

}  // namespace sessionbroker::detail
