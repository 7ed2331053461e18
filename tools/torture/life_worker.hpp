// One worker process of the lifecycle torture (--lifecycle): several threads doing random lock /
// read / write / commit / release (logged and checked as worker.hpp's workers do) while lifecycle
// events happen at random: a thread detaches the process's Client under the others' feet and
// attaches a fresh one; a thread forks a child that drops its copy of the parent's handles,
// attaches its own Client, works, and exits (exit, _exit or the parent's SIGKILL); the main thread
// leaves with pthread_exit() while the others go on; some Clients get a slow revoke callback;
// threads destroy and re-create the volatile sessions ("v<n>").
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "shared.hpp"

namespace torture {

// Counters of the whole lifecycle run, in an anonymous shared mapping (as Shared).
struct LifeCounters {
  std::atomic<std::uint64_t> seq{0};  // commit order within one token: one counter for every writer
  std::atomic<std::uint64_t> ops{0}, forks{0}, child_kills{0}, detaches{0}, reattaches{0}, pthread_exits{0};
  std::atomic<std::uint64_t> commits_after_pthread_exit{0}, destroys{0}, recreates{0}, slow_callbacks{0};
  // Violations: a handle reporting kDetached that nobody detached; a lock of a stable session lost
  // (kStaleToken) though nobody broke it; a lock not granted within 5 s; a forked child that hung or
  // died otherwise than asked.
  std::atomic<std::uint64_t> spurious_detaches{0}, lost_locks{0}, timeouts{0}, bad_children{0};
  std::atomic<std::uint64_t> messages{0};  // printed so far (the first few of each run only)
};


// The lifecycle events a run may use (--events), to tell which one a violation comes from.
enum LifeEvent : unsigned { kDetachEvent = 1, kForkEvent = 2, kPthreadExitEvent = 4, kDestroyEvent = 8, kAllEvents = 15 };

struct LifeConfig {
  std::string segment, log_dir;  // each thread and child logs to its own file in log_dir
  std::uint32_t id = 0;
  int threads = 3, sessions = 4, attrs = 3, volatile_sessions = 2;
  int round_ms = 1000;  // the main thread's pthread_exit() comes at a random moment of the round
  std::uint64_t seed = 0;
  unsigned events = kAllEvents;
};

// Runs until shared->stop; the last thread to finish detaches and ends the process with _exit(0).
[[noreturn]] void run_life_worker(const LifeConfig& cfg, Shared* shared, LifeCounters* life);

}  // namespace torture
