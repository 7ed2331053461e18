// Scenario 5, throughput: P processes (1..64) each doing uncontended-style acquire + release as
// fast as they can for a fixed time, either on disjoint sessions (process i on session i) or on a
// few hot ones (each operation on one of 4 sessions picked at random). Operations per second,
// summed over the processes, for sessionbroker and peers in the same run:
//   sb     public API: lock one attribute + unlock + release (no caching, so each operation
//          really takes and gives back the process lock; on hot sessions, through the FIFO queue)
//   floor  robust pthread mutex lock + unlock, one mutex per session (padded to its own lines)
//   flock  flock LOCK_EX + LOCK_UN on one file per session
//   redis  SET NX PX + compare-and-delete over the unix socket, retrying every 2 ms when taken
// The machine has 2 cores: disjoint throughput can grow with processes up to 2, then stays flat.
#include <cstdio>
#include <random>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <unistd.h>

#include "peers.hpp"
#include "procs.hpp"
#include "redis_peer.hpp"
#include "sessionbroker/client.hpp"
#include "registry.hpp"

namespace sbbench {
namespace {

using namespace std::chrono_literals;

constexpr int kMaxProcs = 64;
constexpr int kHotSessions = 4;

struct alignas(128) PaddedLock {
  RobustLock lock;
};

struct Shared {
  std::atomic<std::uint32_t> ready, go, stop;
  std::atomic<std::uint64_t> ops[kMaxProcs];
  PaddedLock locks[kMaxProcs];
};

// Runs op(session) until stop; counts the operations finished before it.
template <class Op>
int work(Shared& sh, int me, bool hot, Op&& op) {
  std::mt19937 rng(static_cast<unsigned>(me) * 7919u + 1);
  std::uniform_int_distribution<int> pick(0, kHotSessions - 1);
  sh.ready.fetch_add(1);
  while (!sh.go.load(std::memory_order_acquire)) usleep(100);
  std::uint64_t n = 0;
  while (!sh.stop.load(std::memory_order_acquire)) {
    op(hot ? pick(rng) : me);
    ++n;
  }
  sh.ops[me].store(n, std::memory_order_release);
  return 0;
}

int run_sb(Shared& sh, int me, bool hot, const std::string& segment) {
  auto c = sessionbroker::Client::attach(segment);
  if (!c) return 3;
  std::vector<sessionbroker::Session> sessions;
  for (int i = 0; i < (hot ? kHotSessions : kMaxProcs); ++i) sessions.push_back(*(*c)->open(fmt::format("s{}", i)));
  return work(sh, me, hot, [&](int s) {
    auto l = sessions[s].lock({"a"}, sessionbroker::Mode::kExclusive, sessionbroker::in(5s));
    if (!l) return;
    (void)l->unlock();
    (void)sessions[s].release(sessionbroker::in(5s));
  });
}

int run_mutex(Shared& sh, int me, bool hot) {
  return work(sh, me, hot, [&](int s) {
    sh.locks[s].lock.lock();
    sh.locks[s].lock.unlock();
  });
}

int run_flock(Shared& sh, int me, bool hot) {
  std::vector<std::unique_ptr<FlockFile>> files;
  for (int i = 0; i < (hot ? kHotSessions : kMaxProcs); ++i)
    files.push_back(std::make_unique<FlockFile>(fmt::format("{}/s5-{}.lock", tmp_dir(), i)));
  return work(sh, me, hot, [&](int s) {
    files[s]->lock();
    files[s]->unlock();
  });
}

int run_redis(Shared& sh, int me, bool hot, const RedisServer& redis) {
  RedisConn conn(redis, Transport::kUnix);
  const std::string token = "host|" + std::to_string(getpid());
  return work(sh, me, hot, [&](int s) {
    const std::string key = fmt::format("s5:lock:{}", s);
    if (conn.lock_retrying(key, token, kPhpredisRetryUs, now_ns() + 5'000'000'000ull)) conn.unlock(key, token);
  });
}

}  // namespace

void run_throughput(Harness& h) {
  const auto duration = h.opts.quick ? 250ms : 1500ms;
  const std::vector<int> counts = h.opts.quick ? std::vector<int>{1, 2, 8, 64} : std::vector<int>{1, 2, 4, 8, 16, 32, 64};
  ScopedSegment seg("s5tput", caps(kMaxProcs + 8, kMaxProcs, 1 << 20));
  sessionbroker::detail::Registry registry(seg.seg());
  for (int i = 0; i < kMaxProcs; ++i) (void)registry.create_session(fmt::format("s{}", i), 0);
  auto* sh = shared_anon<Shared>();
  for (auto& l : sh->locks) l.lock.init();

  struct System {
    const char* id;
    const char* role;
    const char* label;
    bool redis;
  };
  const System systems[] = {
      {"sb", "sb", "sessionbroker: lock + unlock + release (API)", false},
      {"floor.robust_mutex", "floor", "robust pthread mutex lock + unlock", false},
      {"peer.flock", "peer", "flock on a per-session file", false},
      {"peer.redis_unix", "peer", "Redis SET NX PX + compare-and-delete, unix socket", true},
  };
  for (bool hot : {false, true}) {
    const std::string group = hot ? "s5.tput.hot" : "s5.tput.disjoint";
    const std::string title = hot ? "5. throughput, P processes on 4 hot sessions (ops/s)"
                                  : "5. throughput, P processes on disjoint sessions (ops/s)";
    for (const System& sys : systems) {
      if (!h.opts.selected(sys.id)) continue;
      if (sys.redis && !h.redis) {
        h.sink->skipped(group, sys.id, "Redis unavailable");
        continue;
      }
      for (int procs : counts) {
        sh->ready = sh->go = sh->stop = 0;
        for (auto& o : sh->ops) o = 0;
        std::vector<pid_t> pids;
        for (int i = 0; i < procs; ++i)
          pids.push_back(spawn([&, i]() -> int {
            const std::string id = sys.id;
            if (id == "sb") return run_sb(*sh, i, hot, seg.name());
            if (id == "floor.robust_mutex") return run_mutex(*sh, i, hot);
            if (id == "peer.flock") return run_flock(*sh, i, hot);
            return run_redis(*sh, i, hot, *h.redis);
          }));
        wait_until([&] { return sh->ready.load() == static_cast<std::uint32_t>(procs); }, 20s);
        const std::uint64_t t0 = now_ns();
        sh->go = 1;
        std::this_thread::sleep_for(duration);
        sh->stop = 1;
        const double secs = static_cast<double>(now_ns() - t0) / 1e9;
        if (!wait_all(pids, 20s)) std::fprintf(stderr, "s5 %s %dp: a participant failed\n", sys.id, procs);
        std::uint64_t total = 0;
        for (int i = 0; i < procs; ++i) total += sh->ops[i].load();
        h.sink->value(group, title, sys.id, sys.role, sys.label, static_cast<double>(total) / secs, "ops/s", {},
                      std::to_string(procs));
        std::fprintf(stderr, "  s5 %-8s %-20s %2dp %12.0f ops/s\n", hot ? "hot" : "disjoint", sys.id, procs,
                     static_cast<double>(total) / secs);
      }
    }
  }
}

}  // namespace sbbench
