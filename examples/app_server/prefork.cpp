#include "prefork.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <mutex>
#include <thread>
#include <vector>

#include "demo_process.hpp"

namespace app {
namespace {

using demo::Clock;
constexpr auto kRunDeadline = std::chrono::seconds(30);

// The body of one worker process: returns its exit status.
int serve_as_worker(int index, const ServerOptions& o, const StoreFactory& make_store, int go_fd, int report_fd) {
  Tally tally(o.users);
  std::string error;
  auto store = make_store(error);
  if (!store) tally.fail("worker start: " + error);
  if (!demo::wait_for_eof(go_fd, Clock::now() + kRunDeadline)) tally.fail("no start signal");
  if (tally.failures == 0) {
    std::mutex mu;
    std::vector<std::thread> threads;
    for (int t = 0; t < o.threads; ++t) {
      threads.emplace_back([&, t] {
        Tally mine(o.users);
        Traffic traffic(index, t, o.users);
        for (int i = 0; i < o.requests_per_thread; ++i)
          if (auto failed = store->serve(traffic.next(), mine)) mine.fail(*failed);
        std::lock_guard lk(mu);
        tally.merge(mine);
      });
    }
    for (auto& th : threads) th.join();
  }
  store.reset();  // detaches: the cached session locks go back before the parent reads the state
  const bool sent = demo::write_all(report_fd, tally.serialize() + "\n");
  return sent && tally.failures == 0 ? 0 : 1;
}

}  // namespace

RunResult run_prefork(const ServerOptions& o, const StoreFactory& make_store) {
  RunResult result;
  result.served = Tally(o.users);
  demo::Pipe go;
  std::vector<pid_t> pids;
  std::vector<demo::Pipe> reports;
  for (int w = 0; w < o.workers; ++w) {
    demo::Pipe report;
    const pid_t pid = fork();
    if (pid == 0) {
      go.close_write();
      report.close_read();
      _exit(serve_as_worker(w, o, make_store, go.read_end(), report.write_end()));
    }
    if (pid < 0) {
      result.error = "fork failed";
      break;
    }
    report.close_write();
    pids.push_back(pid);
    reports.push_back(std::move(report));
  }
  const auto started = Clock::now();
  go.close_write();  // EOF on every worker's go pipe: start serving
  std::vector<int> fds;
  for (auto& r : reports) fds.push_back(r.read_end());
  std::vector<std::string> lines;
  const bool all_reported = demo::read_all_until_eof(fds, lines, started + kRunDeadline);
  result.seconds = std::chrono::duration<double>(Clock::now() - started).count();
  bool all_exited_ok = true;
  for (pid_t pid : pids) {
    auto status = demo::wait_exit(pid, Clock::now() + std::chrono::seconds(5));
    if (!status) {
      kill(pid, SIGKILL);
      status = demo::wait_exit(pid, Clock::now() + std::chrono::seconds(5));
    }
    all_exited_ok = all_exited_ok && status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0;
  }
  for (const auto& line : lines) {
    if (auto t = Tally::parse(line, o.users)) result.served.merge(*t);
    else if (result.error.empty()) result.error = "a worker sent no report";
  }
  if (result.error.empty() && !all_reported) result.error = "workers did not finish within the deadline";
  if (result.error.empty() && result.served.failures > 0) result.error = result.served.first_error;
  if (result.error.empty() && !all_exited_ok) result.error = "a worker failed";
  result.ok = result.error.empty() && static_cast<int>(pids.size()) == o.workers;
  return result;
}

}  // namespace app
