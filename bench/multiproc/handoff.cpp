// Scenario 3: N processes (2, 4, 8) take turns on one lock; one-way latency from the moment the
// holder lets go to the moment the next holder runs. The same driver runs sessionbroker and
// every peer:
//
//   loop: acquire; sample now - stamp (if another process stamped it); wait until someone else
//         wants the lock; stamp; release; sleep until another process has acquired it
//
// "Wants the lock" is each system's own signal, and the wait for it is outside the timed window:
// sessionbroker's revoke request (the waiter has queued), a blocked flock in /proc/locks, a
// blocked BLPOP in Redis's INFO, a failed SET NX for the retry loop. The holder also waits until
// every other process is inside its acquire: otherwise, with 4 or 8 processes, a lock without a
// queue (flock, the retry loop) goes to a process that was still on its way to asking, and the
// sample times that process's wake-up, not a handoff to a waiter (the retry loop then looked
// 50 times faster at 4 processes than at 2). The floors are turn-based (the next process is asleep
// on its own futex word or condition variable).
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <sys/stat.h>
#include <unistd.h>

#include "peers.hpp"
#include "procs.hpp"
#include "redis_peer.hpp"
#include "sessionbroker/client.hpp"
#include "registry.hpp"

namespace sbbench {
namespace {

using namespace std::chrono_literals;
namespace shm = sessionbroker::shm;

constexpr int kMaxProcs = 8;

struct Shared {
  std::atomic<std::uint64_t> stamp_ns;
  std::atomic<std::int32_t> stamp_owner;
  std::atomic<std::uint32_t> stop;
  std::atomic<std::uint32_t> ready;
  std::atomic<std::uint32_t> go;
  std::atomic<std::uint32_t> waiting;  // participants inside acquire() (all but the floors)
  std::uint32_t procs;                 // participants in this run
  std::uint32_t taken;                 // futex word: bumped by every acquisition
  std::uint32_t ring[kMaxProcs];       // futex floor: process i sleeps on ring[i]
  RobustLock robust;                   // condvar floor: `turn` under robust.mutex
  pthread_cond_t conds[kMaxProcs];
  int turn;
};

bool stopped(const Shared& sh) { return sh.stop.load(std::memory_order_acquire) != 0; }

// Every participant but the holder is inside acquire().
bool all_others_waiting(const Shared& sh) { return sh.waiting.load() + 1 >= sh.procs; }

// Counts the caller in sh.waiting while it is inside acquire().
struct Waiting {
  Shared& sh;
  explicit Waiting(Shared& s) : sh(s) { sh.waiting.fetch_add(1); }
  ~Waiting() { sh.waiting.fetch_sub(1); }
};

// The driver every participant runs. Lock: bool acquire(); void wait_contended(); void release().
// A sample is taken only when the lock moved to another process (the stamp is someone else's).
template <class Lock>
int participate(Shared& sh, SampleBuffer& samples, std::uint32_t target, int me, Lock& lock, bool turns = true) {
  sh.ready.fetch_add(1);
  while (!sh.go.load(std::memory_order_acquire)) usleep(100);
  while (!stopped(sh)) {
    if (!lock.acquire()) continue;
    const std::uint64_t now = now_ns(), stamp = sh.stamp_ns.load(std::memory_order_acquire);
    if (stamp != 0 && sh.stamp_owner.load(std::memory_order_relaxed) != me) {
      samples.add(static_cast<double>(now - stamp));
      if (samples.size() >= target) sh.stop.store(1, std::memory_order_release);
    }
    shm::bump_and_wake(sh.taken);
    lock.wait_contended();
    const std::uint32_t taken = shm::load(sh.taken);
    sh.stamp_owner.store(me, std::memory_order_relaxed);
    sh.stamp_ns.store(now_ns(), std::memory_order_release);
    lock.release();
    // Taking turns: sleep until another process has the lock before asking again. Without this,
    // locks that have no queue (flock, the Redis retry loop) are mostly re-taken by their releaser
    // and the few real handoffs look as fast as a round trip. Outside the timed window.
    while (turns && shm::load(sh.taken) == taken && !stopped(sh)) shm::futex_wait(sh.taken, taken, shm::Clock::now() + 100ms);
  }
  return 0;
}

// sessionbroker: the process keeps its lock after unlock (cached) until a revoke request comes;
// the holder waits for that request, then its unlock() gives the process lock to the waiter.
struct SbLock {
  Shared& sh;
  std::unique_ptr<sessionbroker::Client> client;
  std::optional<sessionbroker::Session> session;
  std::optional<sessionbroker::SessionLock> held;
  std::mutex m;
  std::condition_variable cv;
  bool requested = false;

  SbLock(Shared& s, const std::string& segment) : sh(s) {
    auto c = sessionbroker::Client::attach(segment);
    if (!c) std::exit(3);
    client = std::move(*c);
    client->on_revoke([this](const sessionbroker::RevokeEvent& e) {
      if (e.kind != sessionbroker::RevokeEvent::Kind::kRequested) return;
      std::lock_guard lk(m);
      requested = true;
      cv.notify_all();
    });
    session = *client->open("hot");
  }
  bool acquire() {
    Waiting w(sh);
    auto l = session->lock({"a"}, sessionbroker::Mode::kExclusive, sessionbroker::in(1s));
    if (!l) return false;
    held.emplace(std::move(*l));
    return true;
  }
  void wait_contended() {
    std::unique_lock lk(m);
    while (!requested && !stopped(sh)) cv.wait_for(lk, 1ms);
    requested = false;
    lk.unlock();
    wait_until([&] { return stopped(sh) || all_others_waiting(sh); }, 2s);
  }
  void release() {
    (void)held->unlock();
    held.reset();
  }
};

// Futex floor: a ring of futex words; releasing wakes the next process's word.
struct FutexRing {
  Shared& sh;
  int me, n;
  std::uint32_t seen;
  FutexRing(Shared& s, int i, int procs) : sh(s), me(i), n(procs), seen(i == 0 ? ~0u : 0) {}
  bool acquire() {
    std::uint32_t w;
    while ((w = shm::load(sh.ring[me])) == seen) {
      if (stopped(sh)) return false;
      shm::futex_wait(sh.ring[me], w, shm::Clock::now() + 100ms);
    }
    seen = w;
    return true;
  }
  void wait_contended() {}
  void release() { shm::bump_and_wake(sh.ring[(me + 1) % n], 1); }
};

// Robust pthread mutex + condition variable floor: `turn` names the next holder.
struct CondvarTurn {
  Shared& sh;
  int me, n;
  bool acquire() {
    sh.robust.lock();
    while (sh.turn != me && !stopped(sh)) {
      timespec ts{};
      clock_gettime(CLOCK_MONOTONIC, &ts);
      ts.tv_nsec += 100'000'000;
      if (ts.tv_nsec >= 1'000'000'000) ts.tv_sec += 1, ts.tv_nsec -= 1'000'000'000;
      pthread_cond_timedwait(&sh.conds[me], &sh.robust.mutex, &ts);
    }
    const bool mine = sh.turn == me;
    sh.robust.unlock();
    return mine;
  }
  void wait_contended() {}
  void release() {
    sh.robust.lock();
    sh.turn = (me + 1) % n;
    pthread_cond_signal(&sh.conds[sh.turn]);
    sh.robust.unlock();
  }
};

struct FlockPeer {
  Shared& sh;
  FlockFile file;
  unsigned long inode;
  FlockPeer(Shared& s, const std::string& path) : sh(s), file(path) {
    struct stat st {};
    stat(path.c_str(), &st);
    inode = st.st_ino;
  }
  bool acquire() {
    Waiting w(sh);
    file.lock();
    return true;
  }
  void wait_contended() {
    wait_until([&] { return stopped(sh) || (all_others_waiting(sh) && flock_waiter_blocked(inode)); }, 2s);
  }
  void release() { file.unlock(); }
};

// phpredis-style: SET NX PX, retrying every 2 ms; release by compare-and-delete.
struct RedisRetryPeer {
  Shared& sh;
  RedisConn conn;
  std::string token;
  RedisRetryPeer(Shared& s, const RedisServer& r, Transport t, int me)
      : sh(s), conn(r, t), token("host|" + std::to_string(getpid()) + "|" + std::to_string(me)) {}
  bool acquire() {
    Waiting w(sh);
    return conn.lock_retrying("s3:lock", token, kPhpredisRetryUs, now_ns() + 1'000'000'000ull);
  }
  void wait_contended() { wait_until([&] { return stopped(sh) || all_others_waiting(sh); }, 2s); }
  void release() { conn.unlock("s3:lock", token); }
};

// Redis's best case: the waiter blocks in BLPOP, the holder's RPUSH hands it the lock.
struct RedisBlpopPeer {
  Shared& sh;
  RedisConn conn;
  RedisBlpopPeer(Shared& s, const RedisServer& r, Transport t) : sh(s), conn(r, t) {}
  bool acquire() {
    Waiting w(sh);
    return conn.blpop("s3:list", 1);
  }
  void wait_contended() {
    wait_until([&] { return stopped(sh) || (all_others_waiting(sh) && conn.info_field("blocked_clients") > 0); }, 2s);
  }
  void release() { conn.rpush("s3:list", "token"); }
};

struct Config {
  std::string id, role, label;
  std::function<int(Shared&, SampleBuffer&, std::uint32_t, int, int)> run;  // (sh, samples, target, me, n)
  bool needs_redis = false;
};

std::vector<Config> configs(const std::string& segment, RedisServer* redis) {
  std::vector<Config> c;
  c.push_back({"sb.revoke_handoff", "sb", "sessionbroker: revoke-driven release to a queued process",
               [segment](Shared& sh, SampleBuffer& s, std::uint32_t t, int me, int) {
                 SbLock l(sh, segment);
                 return participate(sh, s, t, me, l);
               }});
  // A worker whose next request is for the same session asks again at once: its lock() queues
  // (and raises a revoke on the new holder) while the handoff is still under way.
  c.push_back({"sb.revoke_handoff_relock", "sb", "sessionbroker, releaser re-requests at once (re-queues mid-handoff)",
               [segment](Shared& sh, SampleBuffer& s, std::uint32_t t, int me, int) {
                 SbLock l(sh, segment);
                 return participate(sh, s, t, me, l, false);
               }});
  c.push_back({"floor.futex_ring", "floor", "futex wake of the next process (ping-pong for 2)",
               [](Shared& sh, SampleBuffer& s, std::uint32_t t, int me, int n) {
                 FutexRing l(sh, me, n);
                 return participate(sh, s, t, me, l);
               }});
  c.push_back({"floor.robust_condvar", "floor", "robust pthread mutex + condition variable turn handoff",
               [](Shared& sh, SampleBuffer& s, std::uint32_t t, int me, int n) {
                 CondvarTurn l{sh, me, n};
                 return participate(sh, s, t, me, l);
               }});
  c.push_back({"peer.flock", "peer", "flock on a per-session file, waiter blocked in the kernel",
               [](Shared& sh, SampleBuffer& s, std::uint32_t t, int me, int) {
                 FlockPeer l(sh, tmp_dir() + "/s3-session.lock");
                 return participate(sh, s, t, me, l);
               }});
  for (Transport tr : {Transport::kTcp, Transport::kUnix}) {
    const std::string tn = transport_name(tr);
    c.push_back({"peer.redis_retry_" + tn, "peer", "Redis SET NX PX, retry every 2 ms (phpredis), " + tn,
                 [redis, tr](Shared& sh, SampleBuffer& s, std::uint32_t t, int me, int) {
                   RedisRetryPeer l(sh, *redis, tr, me);
                   return participate(sh, s, t, me, l);
                 },
                 true});
    c.push_back({"peer.redis_blpop_" + tn, "peer", "Redis BLPOP woken by RPUSH (best case), " + tn,
                 [redis, tr](Shared& sh, SampleBuffer& s, std::uint32_t t, int me, int) {
                   RedisBlpopPeer l(sh, *redis, tr);
                   return participate(sh, s, t, me, l);
                 },
                 true});
  }
  return c;
}

// Resets the shared state for one run of `procs` participants.
void reset(Shared& sh, int procs) {
  sh.stamp_ns = 0;
  sh.stamp_owner = -1;
  sh.stop = sh.ready = sh.go = sh.waiting = 0;
  sh.taken = 0;
  for (auto& w : sh.ring) w = 0;
  sh.ring[0] = 1;  // process 0 holds the first turn
  sh.turn = 0;
  sh.procs = static_cast<std::uint32_t>(procs);
}

}  // namespace

void run_handoff(Harness& h) {
  const auto budget = h.opts.quick ? 400ms : 4000ms;
  const std::uint32_t target = h.opts.quick ? 2000 : 50000;
  ScopedSegment seg("s3", caps(16, 16, 1 << 20));
  (void)sessionbroker::detail::Registry(seg.seg()).create_session("hot", 0);
  auto* sh = shared_anon<Shared>();
  sh->robust.init();
  for (auto& c : sh->conds) {
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&c, &a);
  }
  SampleBuffer* samples = SampleBuffer::create();
  std::unique_ptr<RedisConn> admin;
  if (h.redis) admin = std::make_unique<RedisConn>(*h.redis, Transport::kUnix);

  for (int procs : {2, 4, 8}) {
    if (h.opts.procs != 0 && procs != h.opts.procs) continue;
    const std::string group = "s3.handoff." + std::to_string(procs) + "p";
    const std::string title = "3. cross-process handoff, one way, " + std::to_string(procs) + " processes taking turns";
    for (const Config& c : configs(seg.name(), h.redis)) {
      if (!h.opts.selected(c.id)) continue;
      if (c.needs_redis && !h.redis) {
        h.sink->skipped(group, c.id, "Redis unavailable");
        continue;
      }
      if (admin) {
        admin->command("DEL", "s3:lock");
        admin->command("DEL", "s3:list");
        admin->command("RPUSH", "s3:list", "token");
      }
      reset(*sh, procs);
      samples->reset();
      std::vector<pid_t> pids;
      for (int i = 0; i < procs; ++i) pids.push_back(spawn([&, i] { return c.run(*sh, *samples, target, i, procs); }));
      wait_until([&] { return sh->ready.load() == static_cast<std::uint32_t>(procs); }, 10s);
      sh->go = 1;
      wait_until([&] { return samples->size() >= target; }, budget, 10ms);
      sh->stop = 1;
      if (!wait_all(pids, 15s)) std::fprintf(stderr, "s3 %s %dp: a participant failed\n", c.id.c_str(), procs);
      auto v = samples->take();
      if (v.size() > 20) v.erase(v.begin(), v.begin() + 10);  // warm-up: first handoffs page in code
      h.sink->latency(group, title, c.id, c.role, c.label, std::move(v));
      std::fprintf(stderr, "  s3 %dp %-22s %u samples\n", procs, c.id.c_str(), samples->size());
    }
  }
}

}  // namespace sbbench
