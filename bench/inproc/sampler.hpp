// Per-operation latency samples inside Google Benchmark, for the in-process programs.
//
// Google Benchmark reports a mean per iteration; the suite needs medians, tails and whole
// distributions. So each benchmark iteration times a batch of `batch` operations with the
// monotonic clock and records the batch's time per operation, less the clock's own cost (measured
// once at start). Batches keep the clock (about 20-40 ns on this VM's kvm-clock) from dominating
// operations of a few ns; they also mean a percentile is over batch means, which narrows the
// distribution by about sqrt(batch): cheap operations use small batches to keep tails visible.
//
// report() publishes p50/p99 as Google Benchmark counters (console and its JSON) and puts the
// whole distribution into the suite's result sink. Google Benchmark runs a benchmark function
// several times while sizing it; the last (longest) run's report replaces the earlier ones.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "env.hpp"
#include "redis_peer.hpp"
#include "stats.hpp"

namespace sbbench {

// What the in-process benchmarks share; set up by main() before any benchmark runs.
struct InprocEnv {
  Options opts;
  std::unique_ptr<ResultSink> sink;
  std::unique_ptr<RedisServer> redis;  // null when Redis is unavailable
  double clock_overhead_ns = 0;
};
InprocEnv& env();

// Where one measurement is reported: the group (a scenario at one parameter) and the row in it.
struct Row {
  std::string group, group_title, id, role, label;
};

class Sampler {
 public:
  Sampler(benchmark::State& st, int batch) : st_(st), batch_(batch) { samples_.reserve(1 << 16); }

  // Times `op` in batches for as many iterations as Google Benchmark asks.
  template <class Op>
  void run(Op&& op) {
    for (auto _ : st_) {
      const std::uint64_t t0 = now_ns();
      for (int i = 0; i < batch_; ++i) op();
      add_batch(now_ns() - t0);
    }
  }
  // For loops that time only part of each iteration themselves (batch must be 1).
  void add_batch(std::uint64_t ns) {
    if (samples_.size() < kMaxSamples)
      samples_.push_back(std::max(0.0, static_cast<double>(ns) - env().clock_overhead_ns) / batch_);
  }
  // Reports into the first row's group and into each extra group (the same floor beside several
  // scenarios).
  void report(const Row& row, const std::vector<std::pair<std::string, std::string>>& also = {});

 private:
  static constexpr std::size_t kMaxSamples = 4'000'000;
  benchmark::State& st_;
  int batch_;
  std::vector<double> samples_;
};

// Skips the benchmark (and notes it in the sink) when Redis is not available.
bool need_redis(benchmark::State& st, const Row& row);

}  // namespace sbbench
