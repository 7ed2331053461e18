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

}  // namespace sessionbroker::detail
