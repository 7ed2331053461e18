// Scenario 6: a holder is SIGKILLed while another process waits for its lock; the time from the
// kill to the waiter's grant. One process kills, the holder dies, the waiter records its grant
// time against the kill's time stamp (one clock for all processes).
//
//   sb.broker_up    session-broker watches every client through a pidfd and reclaims the dead
//                   one's locks at once, which grants the waiter
//   sb.broker_down  no broker: the waiter checks its holders' liveness itself, periodically (the
//                   library's period, at most 200 ms). The kill lands at a random moment 2..202 ms
//                   after the waiter queued, as it would in production, not in step with the checks
//   floor.pidfd     how long a pidfd takes to report the SIGKILLed process (the broker's signal)
//   floor.robust_mutex  a robust pthread mutex: the kernel hands the next locker EOWNERDEAD
//   peer.flock      the kernel drops a dead process's flock and wakes the blocked waiter
// Redis is not measured: a dead holder's key stays until its PX TTL expires (phpredis sets it to
// max_execution_time, 30 s by default).
#include <cstdio>
#include <random>
#include <string>
#include <thread>

#include <csignal>
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "peers.hpp"
#include "broker_child.hpp"
#include "procs.hpp"
#include "sessionbroker/client.hpp"
#include "registry.hpp"

namespace sbbench {
namespace {

using namespace std::chrono_literals;

struct Shared {
  std::atomic<std::uint32_t> holder_ready, waiter_queued;
  std::atomic<std::uint64_t> kill_ns;
  RobustLock mutex;
};

const char* kGroup = "s6.recovery";
const char* kTitle = "6. dead-holder recovery: SIGKILL of the holder to the waiter's grant";

[[noreturn]] void hold_forever() {
  for (int i = 0; i < 600; ++i) std::this_thread::sleep_for(100ms);  // bounded: killed long before
  _exit(1);
}

void record_grant(Shared& sh, SampleBuffer& samples) {
  const std::uint64_t now = now_ns(), kill = sh.kill_ns.load(std::memory_order_acquire);
  if (kill != 0 && now > kill) samples.add(static_cast<double>(now - kill));
}

// The sessionbroker holder: takes the session, reports the waiter's revoke request, then hangs.
int sb_holder(Shared& sh, const std::string& segment) {
  auto c = sessionbroker::Client::attach(segment);
  if (!c) return 3;
  (*c)->on_revoke([&](const sessionbroker::RevokeEvent& e) {
    if (e.kind == sessionbroker::RevokeEvent::Kind::kRequested) sh.waiter_queued = 1;
  });
  auto l = (*c)->open("victim")->lock_all(sessionbroker::Mode::kExclusive, sessionbroker::in(5s));
  if (!l) return 4;
  sh.holder_ready = 1;
  hold_forever();
}

int sb_waiter(Shared& sh, SampleBuffer& samples, const std::string& segment) {
  auto c = sessionbroker::Client::attach(segment);
  if (!c) return 3;
  auto s = (*c)->open("victim");
  auto l = s->lock_all(sessionbroker::Mode::kExclusive, sessionbroker::in(10s));
  if (!l) return 4;
  record_grant(sh, samples);
  (void)l->unlock();
  (void)s->release(sessionbroker::in(1s));
  return 0;
}

int open_pidfd(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

// One round: holder up, waiter queued (queued() says so), a pause, then the kill.
// Returns false when the round could not be set up.
bool kill_round(Shared& sh, const std::function<int()>& holder, const std::function<int()>& waiter,
                const std::function<bool()>& queued, std::chrono::microseconds pause) {
  sh.holder_ready = sh.waiter_queued = 0;
  sh.kill_ns = 0;
  const pid_t h = spawn(holder);
  std::vector<pid_t> pids{h};
  bool ok = wait_until([&] { return sh.holder_ready.load() != 0; }, 5s);
  if (ok) {
    pids.push_back(spawn(waiter));
    ok = wait_until(queued, 5s);
  }
  std::this_thread::sleep_for(pause);
  sh.kill_ns.store(now_ns(), std::memory_order_release);
  kill(h, SIGKILL);
  return wait_all(pids, 15s) && ok;
}

}  // namespace

void run_recovery(Harness& h) {
  const int rounds = h.opts.quick ? 8 : 100, slow_rounds = h.opts.quick ? 4 : 30;
  auto* sh = shared_anon<Shared>();
  sh->mutex.init();
  SampleBuffer* samples = SampleBuffer::create();
  std::mt19937 rng(7);
  auto report = [&](const char* id, const char* role, const char* label) {
    std::fprintf(stderr, "  s6 %-20s %u samples\n", id, samples->size());
    h.sink->latency(kGroup, kTitle, id, role, label, samples->take());
    samples->reset();
  };

  {  // broker up
    const std::string name = name_prefix() + "-s6broker";
    sessionbroker::broker::BrokerChild broker(SESSION_BROKER_BIN, name,
                                              {"--remove-on-exit", "--max-clients", "16", "--max-sessions", "16",
                                               "--attr-memory", "1M", "--max-value", "64K"});
    if (broker.start()) {
      {
        auto seg = sessionbroker::detail::Segment::open(name);
        if (seg) (void)sessionbroker::detail::Registry(**seg).create_session("victim", 0);
      }
      for (int i = 0; i < rounds; ++i)
        kill_round(*sh, [&] { return sb_holder(*sh, name); }, [&] { return sb_waiter(*sh, *samples, name); },
                   [&] { return sh->waiter_queued.load() != 0; }, 2ms);
      report("sb.broker_up", "sb", "sessionbroker, broker up (pidfd, reclaim, grant)");
    } else {
      h.sink->skipped(kGroup, "sb.broker_up", "session-broker did not start");
    }
    broker.terminate();
    sessionbroker::detail::Segment::remove(name);
  }

  ScopedSegment seg("s6", caps(16, 16, 1 << 20));
  (void)sessionbroker::detail::Registry(seg.seg()).create_session("victim", 0);
  std::uniform_int_distribution<int> pause_us(2'000, 202'000);
  for (int i = 0; i < slow_rounds; ++i)
    kill_round(*sh, [&] { return sb_holder(*sh, seg.name()); }, [&] { return sb_waiter(*sh, *samples, seg.name()); },
               [&] { return sh->waiter_queued.load() != 0; }, std::chrono::microseconds(pause_us(rng)));
  report("sb.broker_down", "sb", "sessionbroker, broker down (waiters check holders' liveness)");

  for (int i = 0; i < rounds; ++i) {  // the pidfd floor: the victim is an attached client, like a holder
    sh->holder_ready = 0;
    const pid_t victim = spawn([&]() -> int {
      auto c = sessionbroker::Client::attach(seg.name());
      sh->holder_ready = 1;
      hold_forever();
    });
    const int fd = open_pidfd(victim);
    if (fd >= 0 && wait_until([&] { return sh->holder_ready.load() != 0; }, 5s)) {
      std::this_thread::sleep_for(2ms);
      const std::uint64_t t0 = now_ns();
      kill(victim, SIGKILL);
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 5000) == 1) samples->add(static_cast<double>(now_ns() - t0));
    }
    if (fd >= 0) close(fd);
    wait_all({victim}, 5s);
  }
  report("floor.pidfd", "floor", "pidfd readable after SIGKILL (what the broker waits for)");

  for (int i = 0; i < rounds; ++i)
    kill_round(*sh,
               [&]() -> int {
                 sh->mutex.lock();
                 sh->holder_ready = 1;
                 hold_forever();
               },
               [&] {
                 sh->waiter_queued = 1;
                 const bool died = sh->mutex.lock_reports_owner_died();
                 record_grant(*sh, *samples);
                 sh->mutex.unlock();
                 return died ? 0 : 5;
               },
               [&] { return sh->waiter_queued.load() != 0; }, 2ms);
  report("floor.robust_mutex", "floor", "robust pthread mutex: next locker gets EOWNERDEAD");

  const std::string path = tmp_dir() + "/s6-session.lock";
  { FlockFile create(path); }
  struct stat st {};
  stat(path.c_str(), &st);
  for (int i = 0; i < rounds; ++i)
    kill_round(*sh,
               [&]() -> int {
                 FlockFile f(path);
                 f.lock();
                 sh->holder_ready = 1;
                 hold_forever();
               },
               [&] {
                 FlockFile f(path);
                 f.lock();
                 record_grant(*sh, *samples);
                 f.unlock();
                 return 0;
               },
               [&] { return flock_waiter_blocked(st.st_ino); }, 2ms);
  report("peer.flock", "peer", "flock: the kernel drops the dead holder's lock");
  h.sink->skipped(kGroup, "peer.redis", "not measured: a dead holder's key stays until its PX TTL (phpredis: 30 s)");
}

}  // namespace sbbench
