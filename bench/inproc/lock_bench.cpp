// Scenarios 1 and 2, in-process: the lock costs a request pays when nobody else wants the session.
//
//   s1  a thread of a process that already holds the session (cached process lock) takes and
//       drops a thread lock on one attribute; floors: bare futex lock and robust pthread mutex
//   s2  process-level acquire + release of a free session (no cache); floor: robust pthread
//       mutex; peers: flock on a per-session file, the Redis lock over TCP and a unix socket
#include <benchmark/benchmark.h>

#include <unistd.h>

#include "inproc.hpp"
#include "peers.hpp"
#include "lock_table.hpp"
#include "registry.hpp"

namespace sbbench {
namespace {

using namespace std::chrono_literals;
using sessionbroker::Mode;
using sessionbroker::in;
namespace shm = sessionbroker::shm;

const char* kS1 = "s1.cached_reacquire";
const char* kS1Title = "1. thread re-acquire of a cached lock: lock + unlock one attribute";
const char* kS2 = "s2.uncontended";
const char* kS2Title = "2. uncontended process-level acquire + release of a free session";

void floor_futex(benchmark::State& st) {
  static auto* lock = shared_anon<FutexLock>();
  Sampler s(st, 64);
  s.run([] {
    lock->lock();
    lock->unlock();
  });
  s.report({kS1, kS1Title, "floor.futex", "floor", "bare futex lock+unlock in shared memory"},
           {{kS2, kS2Title}});
}

void floor_robust_mutex(benchmark::State& st) {
  static auto* lock = [] {
    auto* l = shared_anon<RobustLock>();
    l->init();
    return l;
  }();
  Sampler s(st, 64);
  s.run([] {
    lock->lock();
    lock->unlock();
  });
  s.report({kS1, kS1Title, "floor.robust_mutex", "floor", "robust process-shared pthread mutex lock+unlock"},
           {{kS2, kS2Title}});
}

// The fast lane's synchronisation alone (LocalSession::try_lane / return_lane without the API
// around them): claim CAS, the grant record's two words, publish; the same words, return CAS,
// publish. What scenario 1 costs beyond this row is the API, not the lock.
void floor_lane_atomics(benchmark::State& st) {
  struct Lane {
    std::atomic<std::uint32_t> lane{1};
    alignas(64) std::uint32_t record_state = 2, record_revoke = 0;
  };
  static Lane l;
  Sampler s(st, 64);
  s.run([] {
    std::uint32_t open = 1, taken = 4;
    if (!l.lane.compare_exchange_strong(open, 3, std::memory_order_acquire)) return;
    if (shm::load(l.record_state, std::memory_order_seq_cst) != 2 || shm::load(l.record_revoke, std::memory_order_seq_cst) != 0) return;
    l.lane.store(4, std::memory_order_release);
    benchmark::ClobberMemory();
    if (shm::load(l.record_state, std::memory_order_seq_cst) != 2 || shm::load(l.record_revoke, std::memory_order_seq_cst) != 0) return;
    if (!l.lane.compare_exchange_strong(taken, 3, std::memory_order_acquire)) return;
    l.lane.store(1, std::memory_order_release);
  });
  s.report({kS1, kS1Title, "floor.lane_atomics", "floor", "the fast lane's atomics alone: claim CAS + return CAS"});
}

void sb_cached_reacquire(benchmark::State& st) {
  auto session = fixture_session("s1-cached");
  { auto warm = session.lock({"a"}, Mode::kExclusive, in(1s)); }  // the process lock stays cached
  // One deadline for the run, as a request handler computes one per request: in() reads the
  // clock, which costs 20-40 ns on a kvm-clock VM and is not part of the lock.
  const auto deadline = in(1h);
  Sampler s(st, 8);
  s.run([&] { benchmark::DoNotOptimize(session.lock({"a"}, Mode::kExclusive, deadline)); });
  s.report({kS1, kS1Title, "sb.cached_reacquire", "sb", "sessionbroker: thread lock+unlock on a cached lock"});
}

void sb_store_acquire_release(benchmark::State& st) {
  sessionbroker::detail::Registry registry(inproc().seg->seg());
  sessionbroker::detail::LockTable locks(inproc().seg->seg(), registry);
  auto me = registry.attach_client(getpid());
  auto ref = registry.open_session("s2-store");
  if (!ref) ref = registry.create_session("s2-store", 0);
  const std::uint32_t rec = inproc().seg->seg().first_record_of(*me);
  const auto deadline = sessionbroker::Clock::now();  // never waited for: the session is free
  Sampler s(st, 16);
  s.run([&] {
    auto g = locks.acquire(*me, rec, *ref, sessionbroker::shm::LockMode::kExclusive, deadline);
    (void)locks.release(*ref, *g);
  });
  registry.detach_client(*me, inproc().seg->seg().client(*me).generation);
  s.report({kS2, kS2Title, "sb.store", "sb", "sessionbroker Store: acquire+release (the shared-memory protocol)"});
}

void sb_api_acquire_release(benchmark::State& st) {
  auto session = fixture_session("s2-api");
  const auto deadline = in(1h);  // computed once, as in s1
  Sampler s(st, 4);
  s.run([&] {
    (void)session.lock({"a"}, Mode::kExclusive, deadline);  // unlocked at once; the process lock stays
    (void)session.release(deadline);
  });
  s.report({kS2, kS2Title, "sb.api", "sb", "sessionbroker API: lock + unlock + release (thread and process lock)"});
}

void peer_flock(benchmark::State& st) {
  FlockFile f(tmp_dir() + "/s2-session.lock");
  Sampler s(st, 4);
  s.run([&] {
    f.lock();
    f.unlock();
  });
  s.report({kS2, kS2Title, "peer.flock", "peer", "flock LOCK_EX + LOCK_UN on a per-session file"});
}

void peer_redis_lock(benchmark::State& st, Transport t) {
  const Row row{kS2, kS2Title, std::string("peer.redis_") + transport_name(t), "peer",
                std::string("Redis SET NX PX + compare-and-delete script, ") + transport_name(t)};
  if (!need_redis(st, row)) return;
  RedisConn c(*env().redis, t);
  const std::string key = "s2:lock", token = "host|" + std::to_string(getpid());
  Sampler s(st, 1);
  s.run([&] {
    c.try_lock(key, token);
    c.unlock(key, token);
  });
  s.report(row);
}

}  // namespace

void register_lock_benches() {
  benchmark::RegisterBenchmark("s1/floor.futex", floor_futex);
  benchmark::RegisterBenchmark("s1/floor.robust_mutex", floor_robust_mutex);
  benchmark::RegisterBenchmark("s1/floor.lane_atomics", floor_lane_atomics);
  benchmark::RegisterBenchmark("s1/sb.cached_reacquire", sb_cached_reacquire);
  benchmark::RegisterBenchmark("s2/sb.store", sb_store_acquire_release);
  benchmark::RegisterBenchmark("s2/sb.api", sb_api_acquire_release);
  benchmark::RegisterBenchmark("s2/peer.flock", peer_flock);
  benchmark::RegisterBenchmark("s2/peer.redis_tcp", peer_redis_lock, Transport::kTcp);
  benchmark::RegisterBenchmark("s2/peer.redis_unix", peer_redis_lock, Transport::kUnix);
}

}  // namespace sbbench
