// Futex-style waits on 32-bit words in the shared segment.
//
// Protocol every user follows (no lost wake-up):
//   waiter: w = load(word); if (condition holds) return; futex_wait(word, w, deadline); re-check.
//   waker:  make the condition true; fetch_add(word, 1); futex_wake(word).
// The kernel compares *word with w atomically with going to sleep, so a wake that happens between
// the waiter's check and its sleep changes the word and the sleep returns at once.
// The words are process-shared, so the FUTEX_PRIVATE_FLAG is never used.
#pragma once

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <ctime>
#include <limits>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sessionbroker/shm/atomic_word.hpp"

namespace sessionbroker::shm {

using Clock = std::chrono::steady_clock;  // CLOCK_MONOTONIC on Linux, the futex bitset clock

enum class WaitResult { kWoken, kTimedOut };

// Sleeps while *word == expected, until woken or `deadline` (absolute, steady clock) passes.
// Spurious returns are allowed: callers re-check their condition. Clock::time_point::max() (what
// in() saturates to) is about 292 years after boot: a valid absolute timeout, which the kernel
// caps at its own maximum, so the wait has no end; it is never taken for a past deadline.
inline WaitResult futex_wait(std::uint32_t& word, std::uint32_t expected, Clock::time_point deadline) {
  auto since_epoch = deadline.time_since_epoch();
  if (since_epoch.count() < 0) since_epoch = {};
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  timespec ts{};
  // A 32-bit time_t cannot hold it: wait until the latest time it can (not a truncated one).
  ts.tv_sec = secs.count() > std::numeric_limits<time_t>::max() ? std::numeric_limits<time_t>::max()
                                                                 : static_cast<time_t>(secs.count());
  ts.tv_nsec = static_cast<long>(std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch - secs).count());
  long rc = syscall(SYS_futex, &word, FUTEX_WAIT_BITSET, expected, &ts, nullptr, FUTEX_BITSET_MATCH_ANY);
  if (rc == -1 && errno == ETIMEDOUT) return WaitResult::kTimedOut;
  return WaitResult::kWoken;  // woken, EAGAIN (word already changed) or EINTR: caller re-checks
}

// Wakes up to `count` sleepers on `word`. Callers change the word before waking (see above).
inline void futex_wake(std::uint32_t& word, int count = INT_MAX) {
  syscall(SYS_futex, &word, FUTEX_WAKE, count, nullptr, nullptr, 0);
}

// The waker's half of the protocol in one call.
inline void bump_and_wake(std::uint32_t& word, int count = INT_MAX) {
  fetch_add<std::uint32_t>(word, 1u, std::memory_order_acq_rel);
  futex_wake(word, count);
}

}  // namespace sessionbroker::shm
