// Scenario 8 (issue 13): the handoff a user meets. Two requests of one user hit two workers at
// once, so P processes (2, 8, 64) do a read-modify-write of ONE session counter as fast as they
// can for a fixed time, each system through its ordinary interface:
//   sb          public API: lock("n") + get + put + unlock (commit) + release: every operation
//               gives the process lock back, so each one is a FIFO handoff to a queued process
//   sb.cached   the same without release: the process keeps its lock until a queued process's
//               revoke request makes its unlock give it back (lock caching, the normal case)
//   floor.robust_mutex  robust process-shared pthread mutex around a counter in shared memory
//   floor.fifo_ring     the least a strict FIFO handoff to a sleeping process costs: the P
//               processes pass the counter round-robin, each sleeping on its own futex word until
//               the one before it stores 1 there and wakes it (the order a FIFO lock grants in
//               when every process asks again at once); no lock, no queue, no spin
//   peer.flock  flock LOCK_EX + pread + pwrite + LOCK_UN on one file (PHP's files handler)
// For each: throughput (ops/s over all processes), each operation's latency (its first call to its
// last return, in the process that did it) and the context switches per operation (getrusage
// RUSAGE_SELF in every process, all its threads: for sessionbroker that includes the revoke
// thread; the voluntary ones are also given alone). On 2 cores a strict FIFO
// lock pays at least about one switch per handoff; flock and the mutex let the releaser barge back
// in and pay fewer.
//
// Correctness: every run starts its own counter at zero and checks, after all processes have
// exited, that it equals the number of operations they completed; a mismatch fails the program
// (exit status 1), like a failed operation does.
//
// Then the uncontended full cycle (s8.cycle), one process, no other participant: lock + unlock +
// release through the public API, flock LOCK_EX + LOCK_UN, robust mutex lock + unlock, timed in
// batches of 64 and interleaved batch by batch, so a neighbour's load falls on all three alike.
#include <charconv>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include "peers.hpp"
#include "procs.hpp"
#include "registry.hpp"
#include "sessionbroker/client.hpp"

namespace sbbench {
namespace {

using namespace std::chrono_literals;

constexpr int kMaxProcs = 64;

struct Shared {
  std::atomic<std::uint32_t> ready, go, stop;
  std::atomic<std::uint32_t> failed;
  std::atomic<std::uint64_t> ops[kMaxProcs];
  std::atomic<std::uint64_t> vcsw[kMaxProcs], ivcsw[kMaxProcs];
  std::atomic<std::uint64_t> checked;  // the counter read back by the checker (sessionbroker)
  alignas(128) RobustLock robust;
  alignas(128) std::uint64_t counter;  // the robust mutex's and the ring's counter
  struct alignas(128) Turn {
    std::uint32_t word;  // the ring: 1 when it is this process's turn
  } turn[kMaxProcs];
};

struct Switches {
  std::uint64_t voluntary = 0, involuntary = 0;
};
Switches switches_now() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return {static_cast<std::uint64_t>(ru.ru_nvcsw), static_cast<std::uint64_t>(ru.ru_nivcsw)};
}

// The loop every participant runs: op() returns true (or 1) for an operation done, false (0) for
// a failed one (the run then fails), -1 when it saw the stop flag before doing anything (the ring).
template <class Op>
int work(Shared& sh, SampleBuffer& lat, int me, Op&& op) {
  sh.ready.fetch_add(1);
  while (!sh.go.load(std::memory_order_acquire)) usleep(100);
  const Switches s0 = switches_now();
  std::uint64_t n = 0;
  while (!sh.stop.load(std::memory_order_acquire)) {
    const std::uint64_t t0 = now_ns();
    const int done = static_cast<int>(op());
    if (done < 0) break;
    if (done == 0) {
      sh.failed.fetch_add(1);
      break;
    }
    const std::uint64_t t1 = now_ns();
    if (n > 0) lat.add(static_cast<double>(t1 - t0));  // the first one pages code in
    ++n;
  }
  const Switches s1 = switches_now();
  sh.ops[me].store(n, std::memory_order_release);
  sh.vcsw[me].store(s1.voluntary - s0.voluntary, std::memory_order_relaxed);
  sh.ivcsw[me].store(s1.involuntary - s0.involuntary, std::memory_order_relaxed);
  return 0;
}

std::uint64_t parse_counter(const std::optional<std::string>& v) {
  std::uint64_t n = 0;
  if (v) std::from_chars(v->data(), v->data() + v->size(), n);
  return n;
}

int run_sb(Shared& sh, SampleBuffer& lat, int me, const std::string& segment, const std::string& id, bool release) {
  auto c = sessionbroker::Client::attach(segment);
  if (!c) return 3;
  auto session = (*c)->open(id);
  if (!session) return 3;
  char buf[24];
  return work(sh, lat, me, [&] {
    const auto deadline = sessionbroker::in(10s);  // one per request, as a handler computes it
    auto l = session->lock({"n"}, sessionbroker::Mode::kExclusive, deadline);
    if (!l) return false;
    auto v = l->get("n");
    if (!v) return false;
    const auto end = std::to_chars(buf, buf + sizeof buf, parse_counter(*v) + 1).ptr;
    if (!l->put("n", std::string_view(buf, static_cast<std::size_t>(end - buf)))) return false;
    if (!l->unlock()) return false;
    if (!release) return true;
    // kNotHeld: a queued process's revoke request made unlock() give the lock back already.
    const sessionbroker::Status st = session->release(deadline);
    return st || st.code() == sessionbroker::ErrorCode::kNotHeld;
  });
}

// Reads the session's counter back (in a child: the harness's own process never attaches).
int check_sb(Shared& sh, const std::string& segment, const std::string& id) {
  auto c = sessionbroker::Client::attach(segment);
  if (!c) return 3;
  auto session = (*c)->open(id);
  if (!session) return 3;
  auto l = session->lock({"n"}, sessionbroker::Mode::kExclusive, sessionbroker::in(10s));
  if (!l) return 4;
  auto v = l->get("n");
  if (!v) return 4;
  sh.checked.store(parse_counter(*v));
  return 0;
}

int run_mutex(Shared& sh, SampleBuffer& lat, int me) {
  return work(sh, lat, me, [&] {
    sh.robust.lock();
    const std::uint64_t n = std::atomic_ref<std::uint64_t>(sh.counter).load(std::memory_order_relaxed);
    std::atomic_ref<std::uint64_t>(sh.counter).store(n + 1, std::memory_order_relaxed);
    sh.robust.unlock();
    return true;
  });
}

int run_ring(Shared& sh, SampleBuffer& lat, int me, int procs) {
  using sessionbroker::shm::Clock;
  std::uint32_t& mine = sh.turn[me].word;
  std::uint32_t& next = sh.turn[(me + 1) % procs].word;
  return work(sh, lat, me, [&]() -> int {
    while (std::atomic_ref<std::uint32_t>(mine).load(std::memory_order_acquire) == 0) {
      if (sh.stop.load(std::memory_order_acquire)) return -1;  // the turn may have stopped anywhere
      sessionbroker::shm::futex_wait(mine, 0, Clock::now() + 1ms);
    }
    std::atomic_ref<std::uint32_t>(mine).store(0, std::memory_order_relaxed);
    ++sh.counter;  // only the process whose turn it is touches it
    std::atomic_ref<std::uint32_t>(next).store(1, std::memory_order_release);
    sessionbroker::shm::futex_wake(next, 1);
    return 1;
  });
}

int run_flock(Shared& sh, SampleBuffer& lat, int me, const std::string& path) {
  FlockFile f(path);
  return work(sh, lat, me, [&] {
    f.lock();
    std::uint64_t n = 0;
    const bool ok = pread(f.fd(), &n, sizeof n, 0) >= 0 && pwrite(f.fd(), &(++n), sizeof n, 0) == sizeof n;
    f.unlock();
    return ok;
  });
}

std::uint64_t read_flock_counter(const std::string& path) {
  FlockFile f(path);
  std::uint64_t n = 0;
  return pread(f.fd(), &n, sizeof n, 0) == sizeof n ? n : 0;
}

struct System {
  const char* id;
  const char* role;
  const char* label;
};
const System kSystems[] = {
    {"sb", "sb", "sessionbroker: lock + get + put + unlock + release (API)"},
    {"sb.cached", "sb", "sessionbroker: lock + get + put + unlock, lock cached (handoff by revoke request)"},
    {"floor.robust_mutex", "floor", "robust pthread mutex: lock + read + write + unlock"},
    {"floor.fifo_ring", "floor", "strict FIFO floor: the counter passed round-robin, each process asleep on its own futex"},
    {"peer.flock", "peer", "flock LOCK_EX + pread + pwrite + LOCK_UN on one file"},
};

// One run of `sys` with `procs` processes; reports its rows. False when an operation failed or
// the counter does not match the operations done.
bool run_one(Harness& h, const System& sys, int procs, std::chrono::milliseconds duration, Shared& sh,
             SampleBuffer& lat, ScopedSegment& seg) {
  const std::string sid = sys.id;
  const std::string session_id = fmt::format("rmw-{}-{}", sid, procs);
  const std::string file = fmt::format("{}/s8-{}-{}.counter", tmp_dir(), sid, procs);
  if (sid.rfind("sb", 0) == 0) (void)sessionbroker::detail::Registry(seg.seg()).create_session(session_id, 0);
  sh.ready = sh.go = sh.stop = sh.failed = 0;
  sh.checked = 0;
  sh.counter = 0;
  for (int i = 0; i < kMaxProcs; ++i) sh.ops[i] = sh.vcsw[i] = sh.ivcsw[i] = 0, sh.turn[i].word = 0;
  sh.turn[0].word = 1;  // the ring starts at process 0
  lat.reset();
  std::vector<pid_t> pids;
  for (int i = 0; i < procs; ++i)
    pids.push_back(spawn([&, i]() -> int {
      if (sid == "sb") return run_sb(sh, lat, i, seg.name(), session_id, true);
      if (sid == "sb.cached") return run_sb(sh, lat, i, seg.name(), session_id, false);
      if (sid == "floor.robust_mutex") return run_mutex(sh, lat, i);
      if (sid == "floor.fifo_ring") return run_ring(sh, lat, i, procs);
      return run_flock(sh, lat, i, file);
    }));
  wait_until([&] { return sh.ready.load() == static_cast<std::uint32_t>(procs); }, 20s);
  const std::uint64_t t0 = now_ns();
  sh.go = 1;
  std::this_thread::sleep_for(duration);
  sh.stop = 1;
  const double secs = static_cast<double>(now_ns() - t0) / 1e9;
  bool ok = wait_all(pids, 30s) && sh.failed.load() == 0;

  std::uint64_t ops = 0, vol = 0, invol = 0;
  for (int i = 0; i < procs; ++i) ops += sh.ops[i], vol += sh.vcsw[i], invol += sh.ivcsw[i];
  std::uint64_t counter = 0;
  if (sid.rfind("sb", 0) == 0) {
    ok = wait_all({spawn([&] { return check_sb(sh, seg.name(), session_id); })}, 30s) && ok;
    counter = sh.checked;
  } else if (sid == "peer.flock") counter = read_flock_counter(file);
  else counter = sh.counter;
  if (counter != ops) {
    std::fprintf(stderr, "s8 %s %dp: counter %llu after %llu operations: LOST UPDATES\n", sys.id, procs,
                 static_cast<unsigned long long>(counter), static_cast<unsigned long long>(ops));
    ok = false;
  }

  const double per_op = ops ? 1.0 / static_cast<double>(ops) : 0;
  const std::string p = std::to_string(procs);
  h.sink->value("s8.rmw.tput", "8. hot read-modify-write of one session counter, P processes (ops/s)", sys.id, sys.role,
                sys.label, static_cast<double>(ops) / secs, "ops/s", {}, p);
  h.sink->value("s8.rmw.cs", "8. hot read-modify-write: context switches per operation, voluntary + involuntary",
                sys.id, sys.role, sys.label, static_cast<double>(vol + invol) * per_op, "cs/op", {}, p);
  h.sink->value("s8.rmw.cs_voluntary", "8. hot read-modify-write: of which voluntary (the process slept)", sys.id,
                sys.role, sys.label, static_cast<double>(vol) * per_op, "cs/op", {}, p);
  h.sink->latency("s8.rmw.lat." + p + "p",
                  fmt::format("8. hot read-modify-write, {} processes: one operation, first call to last return", procs),
                  sys.id, sys.role, sys.label, lat.take());
  std::fprintf(stderr, "  s8 %-18s %2dp %10.0f ops/s %6.2f µs/op %6.3f cs/op (vol %.3f) counter %s\n", sys.id, procs,
               static_cast<double>(ops) / secs, ops ? secs * 1e6 / static_cast<double>(ops) : 0.0,
               static_cast<double>(vol + invol) * per_op, static_cast<double>(vol) * per_op,
               counter == ops ? "ok" : "WRONG");
  return ok;
}

// The uncontended full cycle, in one child process, the three systems interleaved batch by batch.
int full_cycle(const std::string& segment, SampleBuffer* out[3], int batches) {
  constexpr int kBatch = 64;
  auto c = sessionbroker::Client::attach(segment);
  if (!c) return 3;
  auto session = (*c)->open("cycle");
  if (!session) return 3;
  FlockFile f(tmp_dir() + "/s8-cycle.lock");
  auto* robust = shared_anon<RobustLock>();
  robust->init();
  const double clock = clock_overhead_ns();
  auto time_batch = [&](SampleBuffer& to, auto&& op) {
    const std::uint64_t t0 = now_ns();
    for (int i = 0; i < kBatch; ++i) op();
    to.add(std::max(0.0, static_cast<double>(now_ns() - t0) - clock) / kBatch);
  };
  bool ok = true;
  for (int b = 0; b < batches + 10; ++b) {
    if (b == 10)
      for (int i = 0; i < 3; ++i) out[i]->reset();  // the first batches page code and the file in
    const auto deadline = sessionbroker::in(10s);     // one per batch (s2 computes one per run)
    time_batch(*out[0], [&] {
      ok = ok && static_cast<bool>(session->lock({"n"}, sessionbroker::Mode::kExclusive, deadline));
      ok = ok && static_cast<bool>(session->release(deadline));
    });
    time_batch(*out[1], [&] {
      f.lock();
      f.unlock();
    });
    time_batch(*out[2], [&] {
      robust->lock();
      robust->unlock();
    });
  }
  return ok ? 0 : 4;
}

}  // namespace

bool run_hot_rmw(Harness& h) {
  const auto duration = h.opts.quick ? 200ms : 1000ms;
  ScopedSegment seg("s8", caps(kMaxProcs + 8, 32, 1 << 20));
  auto* sh = shared_anon<Shared>();
  sh->robust.init();
  SampleBuffer* lat = SampleBuffer::create();
  bool ok = true;
  for (int procs : {2, 8, 64}) {
    if (h.opts.procs != 0 && procs != h.opts.procs) continue;
    for (const System& sys : kSystems)
      if (h.opts.selected(sys.id)) ok = run_one(h, sys, procs, duration, *sh, *lat, seg) && ok;
  }

  if (!h.opts.selected("sb.api") && !h.opts.filter.empty()) return ok;
  (void)sessionbroker::detail::Registry(seg.seg()).create_session("cycle", 0);
  SampleBuffer* cyc[3] = {SampleBuffer::create(), SampleBuffer::create(), SampleBuffer::create()};
  const int batches = h.opts.quick ? 2000 : 20000;
  ok = wait_all({spawn([&] { return full_cycle(seg.name(), cyc, batches); })}, 60s) && ok;
  const char* title = "8. uncontended full cycle, one process, interleaved batches of 64";
  h.sink->latency("s8.cycle", title, "sb.api", "sb", "sessionbroker API: lock + unlock + release", cyc[0]->take());
  h.sink->latency("s8.cycle", title, "peer.flock", "peer", "flock LOCK_EX + LOCK_UN", cyc[1]->take());
  h.sink->latency("s8.cycle", title, "floor.robust_mutex", "floor", "robust pthread mutex lock + unlock",
                  cyc[2]->take());
  std::fprintf(stderr, "  s8 full cycle: %u batches each\n", cyc[0]->size());
  return ok;
}

}  // namespace sbbench
