#include "fork_guard.hpp"

#include <mutex>
#include <pthread.h>

namespace sessionbroker::detail {

std::atomic<std::uint64_t> g_fork_epoch{0};

namespace {
std::once_flag g_once;
void on_fork_child() { g_fork_epoch.fetch_add(1, std::memory_order_relaxed); }
}  // namespace

std::uint64_t fork_epoch() {
  std::call_once(g_once, [] { pthread_atfork(nullptr, nullptr, on_fork_child); });
  return g_fork_epoch.load(std::memory_order_relaxed);
}

}  // namespace sessionbroker::detail
