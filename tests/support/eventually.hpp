// Waits for a condition on state another process changes where no event exists to sleep on
// (for example "the other process is now queued"). Re-checks about every millisecond until the
// deadline; it never sleeps for a fixed time and returns as soon as the condition holds.
#pragma once

#include <chrono>
#include <poll.h>

namespace sbtest {

template <class Pred>
bool eventually(Pred&& pred, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    poll(nullptr, 0, 1);
  }
  return true;
}

}  // namespace sbtest
