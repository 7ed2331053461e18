// The pre-fork server: the parent forks the worker processes, releases them all at once, and adds
// up what each one served. A worker makes its SessionStore after the fork (a sessionbroker Client
// belongs to the process that attached it) and serves its requests with several threads.
//
// Process safety: call run_prefork() from a process with no other threads (fork copies only the
// calling thread). Workers report one line of text on a pipe and exit; the parent waits on the
// pipes and on pidfds with a deadline and kills workers that overrun it.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "stores.hpp"
#include "workload.hpp"

namespace app {

struct ServerOptions {
  int workers = 3;
  int threads = 4;
  int users = 6;
  int requests_per_thread = 150;
};

// Called in each worker, after the fork. Returns nullptr (and says why in `error`) on failure.
using StoreFactory = std::function<std::unique_ptr<SessionStore>(std::string& error)>;

struct RunResult {
  Tally served;           // the sum of the workers' tallies
  bool ok = false;        // every worker started, served and reported
  double seconds = 0;     // from the start signal to the last report
  std::string error;      // why not ok
};

RunResult run_prefork(const ServerOptions& options, const StoreFactory& make_store);

}  // namespace app
