// Is a process (pid + start time) still alive?
//
// Errs only towards "alive": a waiter that wrongly calls a holder dead takes its lock away while
// it still works. The rule:
//   - kill(pid, 0) fails with ESRCH: dead. Succeeds or fails with EPERM (another user's process):
//     the pid exists. Any other error: alive (cannot tell).
//   - /proc/<pid>/stat readable: another start time means the pid was reused, dead. A zombie (or
//     dead) state is dead only when the whole thread group has exited: a process whose main thread
//     called pthread_exit() shows `Z` while its other threads run, and is alive.
//   - /proc/<pid>/stat unreadable (/proc mounted with hidepid=1/2 and the process another user's,
//     or /proc missing): alive, because nothing can be told. So behind hidepid a reused pid is not
//     detected: the pid's new owner is taken for the client until it exits (the broker's pidfd
//     still sees the client's own death at once).
// Callers that act on kDead re-check under the registry mutex, in case the slot was re-attached
// meanwhile.
#pragma once

#include <cstdint>
#include <optional>
#include <sys/types.h>

namespace sessionbroker::detail {

// starttime (field 22 of /proc/<pid>/stat, clock ticks since boot), or nullopt if the stat file
// cannot be read or the whole process has exited (a zombie leader whose other threads still run
// is alive and has its start time).
std::optional<std::uint64_t> process_start_time(pid_t pid);

enum class Liveness { kAlive, kDead };
Liveness check_liveness(pid_t pid, std::uint64_t start_time);

// What check_liveness reads about a process, and its decision from that alone (a pure function,
// so that cases such as EPERM behind hidepid can be tested without another user and mount).
struct ProcessFacts {
  int kill_errno = 0;                      // errno of kill(pid, 0), 0 when it succeeded
  std::optional<std::uint64_t> start_time; // from /proc/<pid>/stat; nullopt when unreadable
  bool exited_state = false;               // the stat shows Z, X or x (the leader has exited)
  std::optional<bool> threads_left;        // for such a state: does any thread still run? nullopt: cannot tell
};
Liveness judge_liveness(const ProcessFacts& facts, std::uint64_t start_time);

}  // namespace sessionbroker::detail
