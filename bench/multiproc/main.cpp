// sb_multiproc: the multi-process half of the bench suite (fork). Scenarios 3 (handoff),
// 5 (throughput), 6 (dead-holder recovery) and 8 (hot read-modify-write, full cycle), each beside
// its floors and peers. Usage:
//   sb_multiproc [--quick] [--out DIR] [--only s3|s5|s6|s8] [--filter ID] [--procs N]
// --filter runs only the system with that id, --procs only that process count of scenarios 3
// and 8 (for profiling one configuration, for example under perf or valgrind). Exit status 1
// when scenario 8 lost an update or an operation failed.
// Writes DIR/multiproc.json and DIR/samples/*.dat. Every loop is bounded in count and time;
// participants die with the harness (PR_SET_PDEATHSIG), Redis and the broker too.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>

#include "procs.hpp"
#include "redis_peer.hpp"

int main(int argc, char** argv) {
  using namespace sbbench;
  Options opts = parse_options(argc, argv);
  std::string only;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--only") == 0 && i + 1 < argc) only = argv[++i];
    else if (std::strcmp(argv[i], "--filter") == 0 && i + 1 < argc) opts.filter = argv[++i];
    else if (std::strcmp(argv[i], "--procs") == 0 && i + 1 < argc) opts.procs = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr, "usage: sb_multiproc [--quick] [--out DIR] [--only s3|s5|s6|s8] [--filter ID] [--procs N]\n");
      return 2;
    }
  }
  std::filesystem::create_directories(opts.out + "/samples");
  ResultSink sink(opts.out, "multiproc");
  auto redis = RedisServer::start();
  Harness h{opts, &sink, redis.get()};
  if (only.empty() || only == "s3") {
    std::fprintf(stderr, "scenario 3: cross-process handoff\n");
    run_handoff(h);
  }
  if (only.empty() || only == "s5") {
    std::fprintf(stderr, "scenario 5: throughput\n");
    run_throughput(h);
  }
  if (only.empty() || only == "s6") {
    std::fprintf(stderr, "scenario 6: dead-holder recovery\n");
    run_recovery(h);
  }
  bool ok = true;
  if (only.empty() || only == "s8") {
    std::fprintf(stderr, "scenario 8: hot read-modify-write, full cycle\n");
    ok = run_hot_rmw(h);
  }
  redis.reset();
  remove_own_tmp_dir();
  return sink.write() && ok ? 0 : 1;
}
