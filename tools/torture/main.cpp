// sessionbroker-torture: worker processes doing random lock / read / write / commit / release on a
// few sessions while a killer SIGKILLs random workers (and, with --kill-broker, the broker) at
// random moments and restarts them. At the end the run is verified (verify.hpp): every attribute
// holds its last acknowledged commit or a later one, nothing is torn, commit order per attribute is
// intact, the segment's invariants I1-I12 hold, nobody is left waiting, and no memory leaked.
//
//   sessionbroker-torture --kills 300                 # the short run of the test suite
//   sessionbroker-torture --kills 10000 --kill-broker # the long run
//   sessionbroker-torture --recovery 200              # time from a holder's SIGKILL to the next grant
//   sessionbroker-torture --lifecycle --rounds 5      # attach / detach / fork / pthread_exit / destroy (lifecycle.hpp)
//   sessionbroker-torture --store etcd://H:P,.../torture --kills 300   # the same verifier on an etcd cluster
#include <csignal>
#include <filesystem>
#include <cstdlib>
#include <random>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "broker_child.hpp"
#include "life_worker.hpp"
#include "lifecycle.hpp"
#include "recovery.hpp"
#include "segment.hpp"
#include "sessionbroker/client.hpp"
#include "sessionbroker/shm/futex.hpp"
#include "verify.hpp"
#include "worker.hpp"

namespace torture {

namespace {

using namespace sessionbroker;

struct Options {
  std::string segment, broker = SESSIONBROKER_TORTURE_BROKER, log_dir;
  std::string store;  // an etcd address instead of a fresh segment (the broker runs with --host-id torture)
  bool etcd() const { return !store.empty(); }
  int workers = 6, sessions = 4, attrs = 3, kills = 300, max_delay_ms = 20, recovery = 0;
  int rounds = 5, round_ms = 1000, threads = 3;
  std::vector<std::string> events{"detach", "fork", "pthread_exit", "destroy"};
  bool kill_broker = false, no_broker = false, sabotage = false, lifecycle = false;
  std::uint64_t seed = 0;
};

pid_t spawn_worker(const Options& o, Shared* sh, std::uint32_t id, std::uint64_t seed) {
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid != 0) return pid;
  WorkerConfig cfg{o.segment, fmt::format("{}/worker-{}.log", o.log_dir, id), id, o.sessions, o.attrs, seed, o.sabotage};
  _exit(run_worker(cfg, sh));
}

void pause_ms(int ms) {
  std::uint32_t word = 0;
  shm::futex_wait(word, 0, shm::Clock::now() + std::chrono::milliseconds(ms));
}

bool create_segment(const Options& o, sessionbroker::broker::BrokerChild& broker) {
  if (!o.no_broker) return broker.start();
  if (o.etcd()) return true;  // the cluster is the store
  detail::CreateOptions create;
  create.caps = {64, 64, 256, 16384, 65536, 0, 0, 0};
  return static_cast<bool>(detail::Segment::create(o.segment, create));
}

struct KillStats {
  int worker_kills = 0, broker_kills = 0, bad_exits = 0;
};

// The killer: a random victim at a random moment, then a replacement.
KillStats kill_loop(const Options& o, Shared* sh, std::vector<pid_t>& pids, sessionbroker::broker::BrokerChild& broker, std::mt19937_64& rng) {
  KillStats k;
  std::uint32_t next_id = static_cast<std::uint32_t>(pids.size());
  for (int i = 0; i < o.kills; ++i) {
    pause_ms(std::uniform_int_distribution<int>(0, o.max_delay_ms)(rng));
    if (o.kill_broker && i % 10 == 9) {
      broker.kill9();
      ++k.broker_kills;
      pause_ms(std::uniform_int_distribution<int>(0, 50)(rng));  // clients run on without a broker
      if (!broker.start()) fmt::print(stderr, "torture: broker restart failed\n");
      continue;
    }
    const std::size_t victim = std::uniform_int_distribution<std::size_t>(0, pids.size() - 1)(rng);
    ::kill(pids[victim], SIGKILL);
    int status = 0;
    waitpid(pids[victim], &status, 0);
    if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) ++k.bad_exits;  // it had stopped by itself
    ++k.worker_kills;
    pids[victim] = spawn_worker(o, sh, next_id++, rng());
  }
  return k;
}

int run_torture(Options o) {
  Shared* sh = map_shared_object<Shared>();
  sessionbroker::broker::BrokerChild broker(o.broker, o.segment,
                                            o.etcd() ? std::vector<std::string>{"--host-id", "torture"}
                                                     : std::vector<std::string>{});
  if (!sh || !create_segment(o, broker)) return fmt::print(stderr, "torture: cannot create segment '{}'\n", o.segment), 1;
  {
    auto c = Client::attach(o.segment);
    for (int s = 0; c && s < o.sessions; ++s) (void)(*c)->create("t" + std::to_string(s));
  }
  std::mt19937_64 rng(o.seed);
  std::vector<pid_t> pids;
  for (int w = 0; w < o.workers; ++w) pids.push_back(spawn_worker(o, sh, static_cast<std::uint32_t>(w), rng()));
  const KillStats k = kill_loop(o, sh, pids, broker, rng);
  sh->stop = 1;
  int bad_exits = k.bad_exits;
  for (pid_t pid : pids) {
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++bad_exits;
  }
  const VerifyResult r = verify_run(o.segment, o.log_dir, o.sessions, o.attrs);
  broker.kill9();
  if (!o.etcd()) detail::Segment::remove(o.segment);
  for (const auto& m : r.messages) fmt::print("  {}\n", m);
  fmt::print("kills: {} workers, {} broker; commits acknowledged: {} ({} verified in logs), reads checked: {}\n",
             k.worker_kills, k.broker_kills, sh->commits.load(), r.commits_logged, sh->reads.load());
  fmt::print("lost commits: {} (online {}), torn values: {} (online {}), order violations: {}, duplicate tokens: {}\n",
             r.lost, sh->lost.load(), r.torn, sh->torn.load(), r.order_violations, r.duplicate_tokens);
  fmt::print("invariant violations: {}, stuck waiters: {}, leaked bytes: {}, lock timeouts: {}, worker errors: {}\n",
             r.invariant_violations, r.stuck, r.leaked_blocks * shm::kBlockBytes, sh->lock_timeouts.load(), bad_exits);
  const bool ok = r.ok() && sh->lost == 0 && sh->torn == 0 && sh->errors == 0 && bad_exits == 0;
  fmt::print("{}\n", ok ? "torture: PASSED" : "torture: FAILED");
  return ok ? 0 : 1;
}

int run_lifecycle_mode(const Options& o) {
  fmt::print("torture --lifecycle: {} rounds of {} ms, {} processes x {} threads, {} sessions x {} attributes{}, seed {}, logs in {}\n",
             o.rounds, o.round_ms, o.workers, o.threads, o.sessions, o.attrs, o.sabotage ? " (sabotage)" : "", o.seed, o.log_dir);
  unsigned events = 0;
  for (const auto& e : o.events)
    events |= e == "detach" ? kDetachEvent : e == "fork" ? kForkEvent : e == "pthread_exit" ? kPthreadExitEvent : kDestroyEvent;
  fmt::print("events: {}\n", fmt::join(o.events, ", "));
  return run_lifecycle({o.segment, o.broker, o.log_dir, o.rounds, o.round_ms, o.workers, o.threads, o.sessions, o.attrs, o.sabotage, o.seed, events});
}

}  // namespace
}  // namespace torture

int main(int argc, char** argv) {
  torture::Options o;
  CLI::App app{"sessionbroker-torture: kill processes at random moments and prove that nothing is lost", "sessionbroker-torture"};
  auto* workers = app.add_option("--workers", o.workers, "worker processes (--lifecycle: 4)")->capture_default_str()->check(CLI::Range(1, 48));
  app.add_option("--sessions", o.sessions, "sessions")->capture_default_str()->check(CLI::Range(1, torture::kMaxSessions));
  app.add_option("--attrs", o.attrs, "attributes per session")->capture_default_str()->check(CLI::Range(1, torture::kMaxAttrs));
  app.add_option("--kills", o.kills, "SIGKILLs to deliver")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--max-delay-ms", o.max_delay_ms, "longest pause between kills")->capture_default_str();
  app.add_flag("--kill-broker", o.kill_broker, "every tenth kill hits the broker, which is restarted");
  app.add_flag("--no-broker", o.no_broker, "run without any broker (waiters reclaim dead holders themselves)");
  app.add_option("--broker", o.broker, "session-broker binary")->capture_default_str();
  app.add_option("--seed", o.seed, "random seed (default: time)");
  app.add_option("--log-dir", o.log_dir, "where workers log acknowledged commits (default: a new temp dir)");
  app.add_option("--store", o.store, "an etcd store (etcd://HOST:PORT[,...]/PREFIX) instead of a fresh segment")
      ->type_name("ADDR");
  app.add_flag("--sabotage", o.sabotage, "self-test: workers sometimes write from a stale read; the run must FAIL");
  app.add_option("--recovery", o.recovery, "instead: measure N holder deaths with the broker up and N down");
  app.add_flag("--lifecycle", o.lifecycle, "instead: rounds of attach / detach / fork / pthread_exit / destroy");
  app.add_option("--rounds", o.rounds, "--lifecycle: rounds, each on a fresh segment and broker")->capture_default_str();
  app.add_option("--round-ms", o.round_ms, "--lifecycle: length of a round")->capture_default_str()->check(CLI::Range(10, 3600000));
  app.add_option("--threads", o.threads, "--lifecycle: threads per worker process")->capture_default_str()->check(CLI::Range(2, 16));
  app.add_option("--events", o.events, "--lifecycle: the events to use (to tell which one a violation comes from)")
      ->capture_default_str()->check(CLI::IsMember({"detach", "fork", "pthread_exit", "destroy"}));
  CLI11_PARSE(app, argc, argv);
  if (o.no_broker && o.kill_broker) return fmt::print(stderr, "--no-broker and --kill-broker exclude each other\n"), 2;
  if (o.lifecycle && workers->count() == 0) o.workers = 4;
  o.segment = fmt::format("sbtorture-{}", getpid());
  if (o.etcd()) {
    if (!o.store.starts_with("etcd://") || o.lifecycle || o.recovery > 0)
      return fmt::print(stderr, "--store takes an etcd address, for the kill run only\n"), 2;
    o.segment = o.store;
    setenv("SESSIONBROKER_HOST_ID", "torture", 1);  // the workers' host, watched by the broker
  }
  if (o.seed == 0) o.seed = static_cast<std::uint64_t>(time(nullptr));
  if (o.recovery > 0) return torture::measure_recovery(o.broker, o.segment, o.recovery);
  const bool own_log_dir = o.log_dir.empty();
  if (own_log_dir) {
    char tmpl[] = "/tmp/sbtorture-XXXXXX";
    if (!mkdtemp(tmpl)) return 1;
    o.log_dir = tmpl;
  }
  if (own_log_dir) fmt::print("(the logs are removed at the end: pass --log-dir to keep them)\n");
  if (!o.lifecycle)
    fmt::print("torture: {} workers, {} sessions x {} attributes, {} kills{}, seed {}, logs in {}\n", o.workers, o.sessions,
               o.attrs, o.kills, o.kill_broker ? " (broker too)" : o.no_broker ? " (no broker)" : "", o.seed, o.log_dir);
  const int rc = o.lifecycle ? torture::run_lifecycle_mode(o) : torture::run_torture(o);
  if (own_log_dir) std::filesystem::remove_all(o.log_dir);  // pass --log-dir to keep them
  return rc;
}
