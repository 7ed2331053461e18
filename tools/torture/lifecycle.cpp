#include "lifecycle.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <random>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "broker_child.hpp"
#include "life_worker.hpp"
#include "segment.hpp"
#include "sessionbroker/client.hpp"
#include "admin.hpp"
#include "value.hpp"
#include "verify.hpp"
#include "worker.hpp"

namespace torture {
namespace {

using namespace sessionbroker;
using namespace std::chrono_literals;

constexpr int kVolatileSessions = 2;

// What the end-of-round checks found, summed over the rounds.
struct Totals {
  std::uint64_t commits = 0, reads = 0, logged = 0, lost = 0, online_lost = 0, torn = 0, online_torn = 0;
  std::uint64_t order = 0, duplicates = 0, invariants = 0, stuck = 0, leaked_blocks = 0;
  std::uint64_t ghosts = 0, holders = 0, bad_exits = 0, errors = 0;
  std::uint64_t violations() const {
    return lost + online_lost + torn + online_torn + order + duplicates + invariants + stuck + leaked_blocks + ghosts +
           holders + bad_exits + errors;
  }
};

template <class F>
pid_t spawn(F body) {
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) body();
  return pid;
}

// Every process of the round is gone: every client slot must come back free (the broker reclaims
// the killed children through their pidfds). A slot still taken after 3 s is a ghost.
std::uint64_t count_ghosts(detail::Segment& seg, const std::vector<pid_t>& workers, std::vector<std::string>& msgs) {
  std::vector<std::uint32_t> taken;
  for (int i = 0; i < 300; ++i, std::this_thread::sleep_for(10ms)) {
    taken.clear();
    for (std::uint32_t c = 0; c < seg.caps().max_clients; ++c)
      if (shm::state(seg.client(c)) != shm::ClientState::kFree) taken.push_back(c);
    if (taken.empty()) return 0;
  }
  for (auto c : taken)
    msgs.push_back(fmt::format("ghost client slot {}: state {}, pid {} ({}, {})", c, shm::load(seg.client(c).state), seg.client(c).pid,
                               std::count(workers.begin(), workers.end(), seg.client(c).pid) ? "a worker" : "a forked child",
                               ::kill(seg.client(c).pid, 0) == 0 ? "alive" : "gone"));
  return taken.size();
}

// Nobody attached: nobody may hold a session lock.
std::uint64_t count_holders(detail::Segment& seg, std::vector<std::string>& msgs) {
  detail::Admin admin(seg);
  std::uint64_t n = 0;
  for (std::uint32_t slot = 0; slot < seg.caps().max_sessions; ++slot) {
    auto snap = admin.snapshot(slot);
    if (!snap || snap->holders.empty()) continue;
    n += snap->holders.size();
    msgs.push_back(fmt::format("session '{}': {} holder(s) left, first pid {}", snap->id, snap->holders.size(), snap->holders[0].pid));
  }
  return n;
}

// The volatile sessions (destroyed and re-created during the round): whole values, then destroyed
// so that verify_run finds every block free.
std::uint64_t check_volatile(const std::string& segment, std::vector<std::string>& msgs) {
  auto client = Client::attach(segment);
  if (!client) return msgs.push_back("volatile check: " + client.status().to_string()), 1;
  std::uint64_t torn = 0;
  for (int v = 0; v < kVolatileSessions; ++v) {
    const std::string id = "v" + std::to_string(v);
    if (auto session = (*client)->open(id)) {
      auto lock = session->lock_all(Mode::kShared, in(10s));
      auto all = lock ? lock->get_all() : Result<std::map<std::string, std::string>>(lock.status());
      if (!all) msgs.push_back(fmt::format("{}: final read failed: {}", id, all.status().to_string())), ++torn;
      for (auto& [name, bytes] : all ? *all : std::map<std::string, std::string>{})
        if (!decode(bytes)) ++torn, msgs.push_back(fmt::format("{}.{}: final value is torn", id, name));
    }
    (void)(*client)->destroy(id, in(10s));
  }
  return torn;
}

void spawn_round(const LifecycleOptions& o, const std::string& seg, const std::string& dir, Shared* sh, LifeCounters* life,
                 std::mt19937_64& rng, std::vector<pid_t>& pids) {
  for (int w = 0; w < o.workers; ++w) {
    const LifeConfig cfg{seg, dir, static_cast<std::uint32_t>(w + 1), o.threads, o.sessions, o.attrs, kVolatileSessions, o.round_ms, rng(), o.events};
    pids.push_back(spawn([&] { run_life_worker(cfg, sh, life); }));
  }
  if (!o.sabotage) return;
  const WorkerConfig saboteur{seg, dir + "/saboteur.log", 1000, o.sessions, o.attrs, rng(), true};
  pids.push_back(spawn([&] { _exit(run_worker(saboteur, sh)); }));
}

// One round on a fresh segment: the workers for round_ms, then every check.
void run_round(const LifecycleOptions& o, int round, Shared* sh, LifeCounters* life, std::mt19937_64& rng, Totals& t) {
  const std::string seg = fmt::format("{}-r{}", o.segment, round), dir = fmt::format("{}/round-{}", o.log_dir, round);
  std::filesystem::create_directories(dir);
  // Not a local: a worker forked below unwinds this frame when its main thread calls pthread_exit(),
  // and ~BrokerChild would SIGKILL the broker from there.
  auto* broker = new sessionbroker::broker::BrokerChild(o.broker, seg);
  if (!broker->start()) return fmt::print(stderr, "torture: cannot start the broker on '{}'\n", seg), delete broker, void(++t.errors);
  if (auto c = Client::attach(seg)) {
    for (int s = 0; s < o.sessions; ++s) (void)(*c)->create("t" + std::to_string(s));
    for (int v = 0; v < kVolatileSessions; ++v) (void)(*c)->create("v" + std::to_string(v));
  }
  new (sh) Shared{};
  std::vector<pid_t> pids;
  spawn_round(o, seg, dir, sh, life, rng, pids);
  std::this_thread::sleep_for(std::chrono::milliseconds(o.round_ms));
  sh->stop = 1;
  std::vector<std::string> msgs;
  for (pid_t pid : pids) {
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++t.bad_exits, msgs.push_back(fmt::format("worker {} ended with status {:#x}", pid, status));
  }
  if (auto s = detail::Segment::open(seg)) {
    t.ghosts += count_ghosts(**s, pids, msgs);
    t.holders += count_holders(**s, msgs);
  }
  t.online_torn += check_volatile(seg, msgs);
  const VerifyResult r = verify_run(seg, dir, o.sessions, o.attrs);
  delete broker;  // SIGKILL
  detail::Segment::remove(seg);
  t.commits += sh->commits, t.reads += sh->reads, t.online_lost += sh->lost, t.online_torn += sh->torn, t.errors += sh->errors;
  t.logged += r.commits_logged, t.lost += r.lost, t.torn += r.torn, t.order += r.order_violations, t.duplicates += r.duplicate_tokens;
  t.invariants += r.invariant_violations, t.stuck += r.stuck, t.leaked_blocks += r.leaked_blocks;
  msgs.insert(msgs.end(), r.messages.begin(), r.messages.end());
  for (std::size_t i = 0; i < msgs.size() && i < 12; ++i) fmt::print("  round {}: {}\n", round, msgs[i]);
  if (msgs.size() > 12) fmt::print("  round {}: ... {} more\n", round, msgs.size() - 12);
}

}  // namespace

int run_lifecycle(const LifecycleOptions& o) {
  Shared* sh = map_shared_object<Shared>();
  LifeCounters* life = map_shared_object<LifeCounters>();
  if (!sh || !life) return 1;
  std::mt19937_64 rng(o.seed);
  Totals t;
  const auto start = std::chrono::steady_clock::now();
  for (int round = 0; round < o.rounds; ++round) run_round(o, round, sh, life, rng, t);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const LifeCounters& l = *life;
  const std::uint64_t life_violations = l.spurious_detaches + l.lost_locks + l.timeouts + l.bad_children;
  fmt::print("rounds: {} in {:.1f} s; operations: {}; commits acknowledged: {} ({} verified in logs), reads checked: {}\n", o.rounds,
             secs, l.ops.load(), t.commits, t.logged, t.reads);
  fmt::print("forks: {} ({} killed), detaches: {} (re-attaches: {}), pthread_exits: {} (commits after: {}), destroys: {} "
             "(re-creates: {}), slow revoke callbacks: {}\n",
             l.forks.load(), l.child_kills.load(), l.detaches.load(), l.reattaches.load(), l.pthread_exits.load(),
             l.commits_after_pthread_exit.load(), l.destroys.load(), l.recreates.load(), l.slow_callbacks.load());
  fmt::print("lost commits: {} (online {}), torn values: {} (online {}), order violations: {}, duplicate tokens: {}\n", t.lost,
             t.online_lost, t.torn, t.online_torn, t.order, t.duplicates);
  fmt::print("invariant violations: {}, stuck waiters: {}, holders left: {}, ghost client slots: {}, leaked bytes: {}\n", t.invariants,
             t.stuck, t.holders, t.ghosts, t.leaked_blocks * shm::kBlockBytes);
  fmt::print("spurious detaches: {}, lost locks: {}, lock timeouts: {}, bad children: {}, bad worker exits: {}, worker errors: {}\n",
             l.spurious_detaches.load(), l.lost_locks.load(), l.timeouts.load(), l.bad_children.load(), t.bad_exits, t.errors);
  const bool ok = t.violations() + life_violations == 0;
  fmt::print("{}\n", ok ? "torture --lifecycle: PASSED" : "torture --lifecycle: FAILED");
  return ok ? 0 : 1;
}

}  // namespace torture
