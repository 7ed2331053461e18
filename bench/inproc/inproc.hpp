// The in-process Google Benchmark program (sb_inproc): shared fixture and registration.
//
// main() creates one segment and one attached Client for scenarios 1, 2 and 4 before any
// benchmark runs, and removes them after; scenario 5 and 7 segments are made by their benchmarks.
#pragma once

#include <memory>
#include <string_view>

#include "sampler.hpp"
#include "sessionbroker/client.hpp"

namespace sbbench {

struct InprocFixture {
  std::unique_ptr<ScopedSegment> seg;
  std::unique_ptr<sessionbroker::Client> client;
};
InprocFixture& inproc();

// Opens the session on the fixture's client, creating it the first time.
sessionbroker::Session fixture_session(std::string_view id);

void register_lock_benches();   // scenarios 1 and 2
void register_data_benches();   // scenario 4
void register_scale_benches();  // scenario 5 (latency) and 7
// Frees what the scale benchmarks keep between runs (their 1M-session segment).
void release_scale_fixtures();

}  // namespace sbbench
