// Is a process (pid + start time) still alive?
//
// Errs only one way: reports kDead only when sure (no such pid, a zombie, or a pid now used by a
// process with another start time). Callers that act on kDead re-check under the registry mutex,
// in case the slot was re-attached meanwhile.
#pragma once

#include <cstdint>
#include <optional>
#include <sys/types.h>

namespace sessionbroker::detail {

// starttime (field 22 of /proc/<pid>/stat, clock ticks since boot), or nullopt if the process
// does not exist or is a zombie.
std::optional<std::uint64_t> process_start_time(pid_t pid);

enum class Liveness { kAlive, kDead };
Liveness check_liveness(pid_t pid, std::uint64_t start_time);

}  // namespace sessionbroker::detail
