// Processes for the multi-process harness (sb_multiproc): forked participants, a sample buffer
// they all write into, and session-broker as a child process.
//
// Process safety: everything shared lives in MAP_SHARED anonymous memory mapped before the fork.
// The parent has no threads when it forks (it never attaches a Client itself), so children start
// clean; a child leaves through _exit, never through the parent's destructors.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <sys/types.h>

#include "env.hpp"
#include "stats.hpp"

namespace sbbench {

// Latency samples from any process. Lives in shared memory (make one with SampleBuffer::create).
struct SampleBuffer {
  static constexpr std::uint32_t kCapacity = 1u << 18;
  std::atomic<std::uint32_t> count;
  double ns[kCapacity];

  static SampleBuffer* create();  // zeroed, in shared memory; reused through reset()
  void reset() { count.store(0, std::memory_order_relaxed); }
  void add(double v) {
    const std::uint32_t i = count.fetch_add(1, std::memory_order_relaxed);
    if (i < kCapacity) ns[i] = v;
  }
  std::uint32_t size() const { return std::min(count.load(std::memory_order_acquire), kCapacity); }
  std::vector<double> take() const { return std::vector<double>(ns, ns + size()); }
};

// Forks a child that runs fn() and _exits with its return value.
pid_t spawn(const std::function<int()>& fn);
// Waits for every pid; any still running after `timeout` gets SIGKILL. True when all exited 0.
bool wait_all(const std::vector<pid_t>& pids, std::chrono::milliseconds timeout);
// Sleeps until pred() holds or `timeout` passes, polling every `every`; returns pred(). The
// harness polls coarsely while participants are being measured (a waking parent takes a core).
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                std::chrono::microseconds every = std::chrono::microseconds(50));


// What every scenario gets: options, the result sink and (maybe) the Redis server.
class RedisServer;
struct Harness {
  Options opts;
  ResultSink* sink;
  RedisServer* redis;  // null when Redis is unavailable
};

void run_handoff(Harness& h);     // scenario 3
void run_throughput(Harness& h);  // scenario 5, throughput
void run_recovery(Harness& h);    // scenario 6
bool run_hot_rmw(Harness& h);     // scenario 8 (issue 13); false when a run failed or lost updates

}  // namespace sbbench
