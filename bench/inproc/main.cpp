// sb_inproc: the in-process half of the bench suite (Google Benchmark). Scenarios 1, 2, 4, 5
// (latency) and 7, each beside its floors and peers. Usage:
//   sb_inproc [--quick] [--out DIR] [Google Benchmark flags, e.g. --benchmark_filter=s1/]
// Writes DIR/inproc.json (the suite's result format, read by sb_report) and DIR/samples/*.dat;
// run.sh also asks Google Benchmark for its own JSON (DIR/inproc.gbench.json).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "inproc.hpp"

namespace sbbench {

InprocFixture& inproc() {
  static InprocFixture f;
  return f;
}

sessionbroker::Session fixture_session(std::string_view id) {
  auto s = inproc().client->open(id);
  if (!s) s = inproc().client->create(id);
  if (!s) {
    std::fprintf(stderr, "session %.*s: %s\n", static_cast<int>(id.size()), id.data(), s.status().to_string().c_str());
    std::exit(1);
  }
  return *s;
}

}  // namespace sbbench

int main(int argc, char** argv) {
  using namespace sbbench;
  auto& e = env();
  e.opts = parse_options(argc, argv);
  std::filesystem::create_directories(e.opts.out + "/samples");
  e.sink = std::make_unique<ResultSink>(e.opts.out, "inproc");
  e.clock_overhead_ns = clock_overhead_ns();
  benchmark::AddCustomContext("sbbench_clock_overhead_ns", std::to_string(e.clock_overhead_ns));

  // --quick: every benchmark briefly. Google Benchmark 1.7 takes --benchmark_min_time in seconds.
  std::vector<char*> args(argv, argv + argc);
  std::string min_time = std::string("--benchmark_min_time=") + (e.opts.quick ? "0.05" : "0.5");
  bool has_min_time = false;
  for (int i = 1; i < argc; ++i) has_min_time |= std::string(argv[i]).rfind("--benchmark_min_time", 0) == 0;
  if (!has_min_time) args.push_back(min_time.data());
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 2;

  e.redis = RedisServer::start();
  auto& f = inproc();
  f.seg = std::make_unique<ScopedSegment>("inproc", caps(16, 1024, 64u << 20));
  auto client = sessionbroker::Client::attach(f.seg->name());
  if (!client) {
    std::fprintf(stderr, "attach: %s\n", client.status().to_string().c_str());
    return 1;
  }
  f.client = std::move(*client);

  register_lock_benches();
  register_data_benches();
  register_scale_benches();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();

  (void)f.client->detach();
  f.client.reset();
  f.seg.reset();
  release_scale_fixtures();
  e.redis.reset();
  remove_own_tmp_dir();
  return e.sink->write() ? 0 : 1;
}
