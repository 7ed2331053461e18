// sessionbroker-demo: several processes increment counters in shared sessions under exclusive
// locks, and the parent checks that no update was lost.
//
//   1. A session-broker child creates a private segment (it removes the segment when it stops).
//      With --store ADDR the demo uses that store instead and starts no broker: a segment served
//      by a broker of yours, or an etcd cluster (etcd://HOST:PORT,.../PREFIX) with a
//      `session-broker --store ADDR --host-id ID` per "host" (README, "Many hosts").
//   2. A child process attaches, opens or creates user:1..user:3, sets counter=0, gives its locks
//      back and exits, so the parent holds no client of any store when it forks the workers (on
//      etcd a client also runs an agent process: docs/etcd.md, "Fork").
//   3. Forked workers attach, wait for a start signal (EOF on a pipe), then repeatedly lock
//      "counter" exclusively in a random session, read it, increment it, put it and unlock.
//      unlock() commits, and the process keeps the session lock cached: the next lock() on that
//      session costs no trip to the store. When another worker queues for the session, the store
//      sends the holder a revoke request, and the library gives the lock back as soon as no thread
//      of the holder uses it. Workers watch this through Client::on_revoke.
//   4. Each worker reports on a pipe what it did; the parent reads the final counters (after
//      every fork) and checks that each equals the number of increments committed on that session.
//
// With --hosts a,b the workers form groups, one per host id, each worker attaching with
// SESSIONBROKER_HOST_ID set to its group's: on etcd each group is served by the broker of that
// host id (it revokes the lease of a worker of its host that dies), as processes of two machines.
//
// Workers are real processes (fork), each with its own Client: a Client is valid only in the
// process that attached it. Nothing waits by sleeping: the parent waits on pipes and pidfds with
// deadlines; the only sleep is the "work" a worker does now and then while holding a lock.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <csignal>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>

#include <CLI/CLI.hpp>

#include "demo_process.hpp"
#include "demo_report.hpp"
#include "sessionbroker/client.hpp"

namespace {

using namespace std::chrono_literals;
using demo::Clock;
using demo::Report;
using demo::say;
using sessionbroker::Client;
using sessionbroker::Mode;
using sessionbroker::RevokeEvent;
using sessionbroker::Session;
using sessionbroker::Status;

constexpr const char* kCounter = "counter";
constexpr auto kLockTimeout = 2s;         // no lock in this demo should take anywhere near this long
constexpr auto kWork = 2ms;               // simulated work, done every kWorkEvery-th iteration
constexpr int kWorkEvery = 10;
constexpr int kEventsShown = 4;           // lines each worker prints before going quiet
constexpr auto kRunDeadline = 30s;        // for the whole worker phase

struct Options {
  std::string broker;
  std::string store;               // empty: a private segment and broker of the demo's own
  std::vector<std::string> hosts;  // SESSIONBROKER_HOST_ID of each worker group (worker i: i % n)
  int workers = 4;
  int iterations = 50;
  bool verbose = false;
};

std::string session_id(int s) { return fmt::format("user:{}", s + 1); }
std::int64_t now_ns() { return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count(); }
std::int64_t ns_of(Clock::time_point t) { return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count(); }

long parse_counter(const std::optional<std::string>& v) {
  long n = 0;
  if (v) std::from_chars(v->data(), v->data() + v->size(), n);
  return n;
}

// ---- a worker process ----

class Worker {
 public:
  Worker(int index, int iterations, std::string host)
      : index_(index), iterations_(iterations), pid_(getpid()), rng_(index * 7919 + pid_), host_(std::move(host)) {}

  // The body of the child process; returns its exit status.
  int run(const std::string& segment, int go_fd, int report_fd) {
    if (!host_.empty()) setenv("SESSIONBROKER_HOST_ID", host_.c_str(), 1);
    auto client = Client::attach(segment);
    if (!client) return event_fail("attach: {}", client.status().to_string());
    (*client)->on_revoke([this](const RevokeEvent& e) { on_revoke(e); });
    std::vector<Session> sessions;
    for (int s = 0; s < demo::kSessions; ++s) {
      auto session = (*client)->open(session_id(s));
      if (!session) return event_fail("open {}: {}", session_id(s), session.status().to_string());
      sessions.push_back(*session);
    }
    if (!demo::wait_for_eof(go_fd, Clock::now() + kRunDeadline)) return event_fail("no start signal");
    std::uniform_int_distribution<int> pick(0, demo::kSessions - 1);
    for (int i = 0; i < iterations_; ++i) {
      const int s = pick(rng_);
      increment(sessions[static_cast<std::size_t>(s)], s, i % kWorkEvery == kWorkEvery - 1);
    }
    release_all(sessions);
    (void)(*client)->detach();  // after this no revoke callback runs: report_ is ours alone
    return demo::write_all(report_fd, demo::serialize(report_)) && report_.failures == 0 && report_.lost == 0 ? 0 : 1;
  }

 private:
  // One locked read-modify-write of the session's counter.
  void increment(Session& session, int s, bool with_work) {
    const auto asked = Clock::now();
    auto lock = session.lock({kCounter}, Mode::kExclusive, sessionbroker::in(kLockTimeout));
    const auto granted = Clock::now();
    if (!lock) return (void)event_fail("lock {}: {}", session_id(s), lock.status().to_string());
    note_grant(s, lock->token(), asked, granted);
    auto value = lock->get(kCounter);
    if (!value) return (void)event_fail("get {}: {}", session_id(s), value.status().to_string());
    if (Status st = lock->put(kCounter, std::to_string(parse_counter(*value) + 1)); !st)
      return (void)event_fail("put {}: {}", session_id(s), st.to_string());
    if (with_work) {
      event("holding {} for {}ms of simulated work", session_id(s), kWork.count());
      std::this_thread::sleep_for(kWork);
    }
    if (Status st = lock->unlock(); !st) return (void)event_fail("commit {}: {}", session_id(s), st.to_string());
    std::lock_guard lk(mu_);
    ++report_.increments[static_cast<std::size_t>(s)];
  }

  // A token this process has not seen on the session means lock() had to get the session lock from
  // the store; the same token means the cached lock served it.
  void note_grant(int s, std::uint64_t token, Clock::time_point asked, Clock::time_point granted) {
    auto& last = last_token_[static_cast<std::size_t>(s)];
    std::lock_guard lk(mu_);
    if (token == last) {
      ++report_.cached;
      return;
    }
    last = token;
    report_.grants.push_back({s, token, ns_of(asked), ns_of(granted)});
    event("granted {} token={} after waiting {}", session_id(s), token, demo::format_ns(ns_of(granted) - ns_of(asked)));
  }

  // Revoke thread. REQUIRES: short; must not block on a session.
  void on_revoke(const RevokeEvent& e) {
    std::lock_guard lk(mu_);
    switch (e.kind) {
      case RevokeEvent::Kind::kRequested:
        ++report_.revokes_requested;
        event("revoke requested on {}, releasing once unlocked", e.session_id);
        break;
      case RevokeEvent::Kind::kReleased:
        ++report_.revokes_honoured;
        report_.released_ns[e.token] = now_ns();
        break;
      case RevokeEvent::Kind::kLost:
        ++report_.lost;
        event("LOST the lock on {} (token {})", e.session_id, e.token);
        break;
    }
  }

  // Gives back the cached locks, so the parent can read the counters at once.
  void release_all(std::vector<Session>& sessions) {
    for (auto& session : sessions) {
      const std::uint64_t token = session.token();
      if (token == 0) continue;
      Status st = session.release(sessionbroker::in(kLockTimeout));
      std::lock_guard lk(mu_);
      if (st) report_.released_ns[token] = now_ns();
      // kNotHeld: the revoke thread gave it back in between, and recorded when.
    }
  }

  template <class... Args>
  void event(fmt::format_string<Args...> f, Args&&... args) {
    const int n = shown_.fetch_add(1, std::memory_order_relaxed);
    if (n < kEventsShown) say("{}: {}", name(), fmt::format(f, std::forward<Args>(args)...));
    if (n == kEventsShown) say("{}: ... (further events not shown)", name());
  }

  // REQUIRES: mu_ not held.
  template <class... Args>
  int event_fail(fmt::format_string<Args...> f, Args&&... args) {
    say("{}: FAILED: {}", name(), fmt::format(f, std::forward<Args>(args)...));
    std::lock_guard lk(mu_);
    ++report_.failures;
    return 1;
  }

  std::string name() const {
    return host_.empty() ? fmt::format("worker {} pid {}", index_, pid_)
                         : fmt::format("worker {} (host {}) pid {}", index_, host_, pid_);
  }

  const int index_, iterations_;
  const pid_t pid_;
  std::mt19937 rng_;
  const std::string host_;
  std::array<std::uint64_t, demo::kSessions> last_token_{};  // main thread only
  std::mutex mu_;  // report_ is written by the main thread and the revoke thread
  Report report_;
  std::atomic<int> shown_{0};
};

// ---- the parent ----

struct WorkerProcess {
  int index;
  pid_t pid;
  demo::Pipe report;
  std::string host;
};

bool complain(std::string_view what, const Status& st) {
  say("{}: {}", what, st.to_string());
  return false;
}

// Runs in a child process (see the top of the file). A store used before keeps its sessions:
// they are opened and their counters set back to 0.
bool prepare_sessions(const std::string& segment) {
  auto client = Client::attach(segment);
  if (!client) return complain("attach", client.status());
  for (int s = 0; s < demo::kSessions; ++s) {
    auto opened = (*client)->open_or_create(session_id(s));
    if (!opened) return complain("create " + session_id(s), opened.status());
    auto* session = &opened->session;
    auto lock = session->lock({kCounter}, Mode::kExclusive, sessionbroker::in(kLockTimeout));
    if (!lock) return complain("lock " + session_id(s), lock.status());
    Status st = lock->put(kCounter, "0");
    if (st) st = lock->unlock();
    if (st) st = session->release(sessionbroker::in(kLockTimeout));
    if (!st) return complain("initialise " + session_id(s), st);
  }
  return true;
}

bool prepare_sessions_in_child(const std::string& segment) {
  const pid_t pid = fork();
  if (pid == 0) _exit(prepare_sessions(segment) ? 0 : 1);
  if (pid < 0) return say("fork: {}", std::strerror(errno)), false;
  const auto status = demo::wait_exit(pid, Clock::now() + kRunDeadline);
  if (!status) kill(pid, SIGKILL), demo::wait_exit(pid, Clock::now() + 5s);
  return status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0;
}

// Forks the workers; they start together once all exist (the go pipe closes).
std::vector<WorkerProcess> spawn_workers(const Options& o, const std::string& segment) {
  demo::Pipe go;
  std::vector<WorkerProcess> workers;
  for (int i = 1; i <= o.workers; ++i) {
    demo::Pipe report;
    const std::string host = o.hosts.empty() ? "" : o.hosts[static_cast<std::size_t>(i - 1) % o.hosts.size()];
    const pid_t pid = fork();
    if (pid == 0) {
      go.close_write();
      for (auto& w : workers) w.report.close_read();
      report.close_read();
      _exit(Worker(i, o.iterations, host).run(segment, go.read_end(), report.write_end()));
    }
    if (pid < 0) {
      say("fork: {}", std::strerror(errno));
      break;
    }
    report.close_write();  // the child's copy is now the only writer: EOF means it is done
    workers.push_back({i, pid, std::move(report), host});
  }
  return workers;  // `go` closes here: start
}

// Collects every worker's report and exit status. Returns false if any failed or was late.
bool collect(std::vector<WorkerProcess>& workers, std::vector<Report>& reports) {
  std::vector<int> fds;
  for (auto& w : workers) fds.push_back(w.report.read_end());
  std::vector<std::string> texts;
  const auto deadline = Clock::now() + kRunDeadline;
  bool ok = demo::read_all_until_eof(fds, texts, deadline);
  if (!ok) say("workers did not finish within {}s", kRunDeadline.count());
  for (std::size_t i = 0; i < workers.size(); ++i) {
    if (!ok) kill(workers[i].pid, SIGKILL);
    const auto status = demo::wait_exit(workers[i].pid, Clock::now() + 5s);
    auto report = demo::parse_report(texts[i]);
    if (!status || !WIFEXITED(*status) || WEXITSTATUS(*status) != 0 || !report) {
      say("worker {} pid {} failed: {}", workers[i].index, workers[i].pid,
          status ? demo::describe_wait_status(*status) : "did not exit");
      ok = false;
    }
    reports.push_back(report.value_or(Report{}));
  }
  return ok;
}

// The committed counter of one session, read under a shared lock.
sessionbroker::Result<long> read_counter(Client& client, int s) {
  auto session = client.open(session_id(s));
  if (!session) return session.status();
  auto lock = session->lock({kCounter}, Mode::kShared, sessionbroker::in(kLockTimeout));
  if (!lock) return lock.status();
  auto v = lock->get(kCounter);
  if (!v) return v.status();
  return parse_counter(*v);
}

std::optional<std::array<long, demo::kSessions>> read_counters(const std::string& segment) {
  auto client = Client::attach(segment);
  if (!client) {
    complain("attach", client.status());
    return std::nullopt;
  }
  std::array<long, demo::kSessions> values{};
  for (int s = 0; s < demo::kSessions; ++s) {
    auto v = read_counter(**client, s);
    if (!v) {
      complain("read " + session_id(s), v.status());
      return std::nullopt;
    }
    values[static_cast<std::size_t>(s)] = *v;
  }
  return values;
}

void print_worker_summaries(const std::vector<WorkerProcess>& workers, const std::vector<Report>& reports,
                            const demo::Analysis& a) {
  for (std::size_t i = 0; i < workers.size(); ++i) {
    const Report& r = reports[i];
    const auto& w = a.waits[i];
    say("worker {}{} pid {}: {} increments, {} grants ({} more served by its cached lock), {} waits (mean {}, max {}), "
        "{} revoke requests, {} honoured",
        workers[i].index, workers[i].host.empty() ? "" : " (host " + workers[i].host + ")", workers[i].pid, r.increments[0] + r.increments[1] + r.increments[2], r.grants.size(),
        r.cached, w.count, demo::format_ns(w.count ? w.total_ns / w.count : 0), demo::format_ns(w.max_ns),
        r.revokes_requested, r.revokes_honoured);
  }
}

// Prints the totals and checks the counters. Returns true when every update arrived.
bool check_and_summarise(const std::vector<Report>& reports, const demo::Analysis& a,
                         const std::array<long, demo::kSessions>& counters, int expected_total, double seconds) {
  std::array<long, demo::kSessions> committed{};
  int grants = 0, cached = 0, requested = 0, honoured = 0, lost = 0;
  for (const auto& r : reports) {
    for (int s = 0; s < demo::kSessions; ++s) committed[static_cast<std::size_t>(s)] += r.increments[static_cast<std::size_t>(s)];
    grants += static_cast<int>(r.grants.size());
    cached += r.cached;
    requested += r.revokes_requested;
    honoured += r.revokes_honoured;
    lost += r.lost;
  }
  const long total = committed[0] + committed[1] + committed[2];
  say("total: {} increments in {:.2f}s: {} grants, {} cache hits, {} waits (mean {}), {} revoke requests ({} honoured), "
      "{} handoffs, {} locks lost",
      total, seconds, grants, cached, a.all_waits.count,
      demo::format_ns(a.all_waits.count ? a.all_waits.total_ns / a.all_waits.count : 0), requested, honoured, a.handoffs,
      lost);
  if (a.unused_grants > 0)
    say("note: {} process locks were given back before any thread used them (granted while another "
        "process was already queued)", a.unused_grants);
  bool ok = total == expected_total && lost == 0;
  std::string line = "counters:";
  for (int s = 0; s < demo::kSessions; ++s) {
    const auto i = static_cast<std::size_t>(s);
    line += fmt::format(" {}={} (committed {})", session_id(s), counters[i], committed[i]);
    ok = ok && counters[i] == committed[i];
  }
  say("{}: {}", line, ok ? "no lost updates" : "MISMATCH");
  if (total != expected_total) say("expected {} increments, {} were committed", expected_total, total);
  return ok;
}

std::string find_broker(const Options& o) {
  if (!o.broker.empty()) return o.broker;
  const std::string next_to_us = demo::self_dir() + "/session-broker";
  if (access(next_to_us.c_str(), X_OK) == 0) return next_to_us;
  return SESSIONBROKER_DEMO_BROKER;  // where the build put it
}

// Everything after the broker is ready. Returns true when every check passed.
bool run_demo(const Options& o, const std::string& segment) {
  if (!prepare_sessions_in_child(segment)) return false;
  say("created {} sessions with counter=0; starting {} workers x {} increments", demo::kSessions, o.workers, o.iterations);
  const auto started = Clock::now();
  auto workers = spawn_workers(o, segment);
  std::vector<Report> reports;
  bool ok = static_cast<int>(workers.size()) == o.workers;
  ok = collect(workers, reports) && ok;
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  const demo::Analysis analysis = demo::analyse(reports);
  print_worker_summaries(workers, reports, analysis);
  const auto counters = read_counters(segment);
  if (!counters) return false;
  return check_and_summarise(reports, analysis, *counters, o.workers * o.iterations, seconds) && ok;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sessionbroker-demo: worker processes increment shared counters under session locks; "
               "checks that no update is lost.",
               "sessionbroker-demo"};
  Options o;
  app.add_option("--broker", o.broker, "session-broker binary (default: next to this one, else the build's)");
  app.add_option("--workers", o.workers, "worker processes")->capture_default_str()->check(CLI::Range(1, 32));
  app.add_option("--iterations", o.iterations, "increments per worker")->capture_default_str()->check(CLI::Range(1, 100000));
  app.add_flag("-v,--verbose", o.verbose, "show the broker's log");
  app.add_option("--store", o.store,
                 "use this store and start no broker: a segment name, or etcd://HOST:PORT,.../PREFIX "
                 "served by a session-broker --store per host");
  app.add_option("--hosts", o.hosts, "host ids of the worker groups (SESSIONBROKER_HOST_ID; worker i in group i % n)")
      ->delimiter(',');
  CLI11_PARSE(app, argc, argv);

  if (!o.store.empty()) {
    say("store {} (its brokers are yours to run){}", o.store,
        o.hosts.empty() ? "" : fmt::format("; {} worker groups by host id", o.hosts.size()));
    const bool ok = run_demo(o, o.store);
    say("{}", ok ? "demo OK" : "demo FAILED");
    return ok ? 0 : 1;
  }
  const std::string segment = fmt::format("sbdemo-{}", getpid());
  const std::string broker_path = find_broker(o);
  std::string error;
  auto broker = demo::BrokerProcess::start(broker_path, segment, o.verbose, Clock::now() + 5s, error);
  if (!broker) {
    say("cannot start the broker: {}", error);
    return 1;
  }
  say("broker pid {} ready: {} --segment {} --remove-on-exit", broker->pid(), broker_path, segment);
  const bool ok = run_demo(o, segment);
  if (!broker->stop(Clock::now() + 5s, error)) {
    say("{}", error);
    return 1;
  }
  say("broker stopped; segment {} removed. {}", segment, ok ? "demo OK" : "demo FAILED");
  return ok ? 0 : 1;
}
