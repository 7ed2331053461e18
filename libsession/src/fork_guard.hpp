// Detects use of a Client in a process forked after attach. A counter bumped by a pthread_atfork
// child handler costs one relaxed load to check, unlike getpid() (a system call in glibc >= 2.25).
#pragma once

#include <cstdint>

namespace sessionbroker::detail {

// Installs the handler once; returns the current fork epoch of this process.
std::uint64_t fork_epoch();
inline bool forked_since(std::uint64_t epoch) { return fork_epoch() != epoch; }

}  // namespace sessionbroker::detail
