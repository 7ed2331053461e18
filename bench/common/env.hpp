// What every bench program shares: the clock, process-shared scratch memory, and segments whose
// names can be swept up after a crash.
//
// Naming: every segment a bench creates is "<prefix>-<what>", the prefix being $SBBENCH_PREFIX
// (bench/run.sh sets "sbbench-<its pid>" and removes /dev/shm/<prefix>-* on exit, Ctrl-C included)
// or "sbbench-<pid>" when a program runs on its own. ScopedSegment removes its segment when it goes
// out of scope; run.sh's trap is the backstop for a program killed before that.
#pragma once

#include <cstdint>
#include <ctime>
#include <memory>
#include <new>
#include <string>

#include <sys/mman.h>

#include "segment.hpp"

namespace sbbench {

// CLOCK_MONOTONIC: one clock for every process on the host, so a time stamped by one process and
// read by another gives a one-way latency.
inline std::uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

// Median cost of one now_ns() pair, subtracted from batched in-process samples.
double clock_overhead_ns();

// Zeroed memory shared with children forked after this call. Never unmapped (the bench is short).
template <class T>
T* shared_anon(std::size_t count = 1) {
  void* p = mmap(nullptr, sizeof(T) * count, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  return static_cast<T*>(p);
}

// Options every program takes: --quick, --out DIR.
struct Options {
  bool quick = false;
  std::string out = "bench/results";
  std::string filter;  // sb_multiproc --filter ID: only that system (for profiling one of them)
  int procs = 0;       // sb_multiproc --procs N: only that process count in scenarios 3 and 8 (0: all)
  bool selected(const std::string& id) const { return filter.empty() || id == filter; }
};
// Removes the options it knows from argv (so Google Benchmark sees only its own).
Options parse_options(int& argc, char** argv);

std::string name_prefix();
// A private temporary directory for flock files and Redis sockets ($SBBENCH_TMP or a new one).
const std::string& tmp_dir();
// Removes tmp_dir() if this process made it (not $SBBENCH_TMP, which belongs to run.sh).
void remove_own_tmp_dir();

class ScopedSegment {
 public:
  // Creates "<prefix>-<what>" exclusively. Exits the program with a message when that fails.
  ScopedSegment(const std::string& what, const sessionbroker::shm::Capacities& caps);
  ~ScopedSegment();
  ScopedSegment(const ScopedSegment&) = delete;
  ScopedSegment& operator=(const ScopedSegment&) = delete;

  const std::string& name() const { return name_; }
  sessionbroker::detail::Segment& seg() const { return *seg_; }

 private:
  std::string name_;
  std::unique_ptr<sessionbroker::detail::Segment> seg_;
};

// Capacities for a segment: `clients` processes, `sessions` sessions, `attr_bytes` of attributes.
sessionbroker::shm::Capacities caps(std::uint32_t clients, std::uint32_t sessions, std::uint64_t attr_bytes,
                                    std::uint32_t max_value = 1u << 20);

}  // namespace sbbench
