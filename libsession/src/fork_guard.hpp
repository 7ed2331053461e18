// Detects use of a Client in a process forked after attach. A counter bumped by a pthread_atfork
// child handler costs one relaxed load to check, unlike getpid() (a system call in glibc >= 2.25).
#pragma once

#include <atomic>
#include <cstdint>

namespace sessionbroker::detail {

// Bumped in the child after every fork(), once fork_epoch() installed the handler.
extern std::atomic<std::uint64_t> g_fork_epoch;

// Installs the handler once; returns the current fork epoch of this process.
std::uint64_t fork_epoch();
// REQUIRES: `epoch` came from fork_epoch() (so the handler is installed).
inline bool forked_since(std::uint64_t epoch) { return g_fork_epoch.load(std::memory_order_relaxed) != epoch; }

}  // namespace sessionbroker::detail
