// Quick latency harness for the three costs the core issue reports, each beside the floor measured
// in the same run. The full suite with peers (flock, Redis) and plots is bench/'s own issue.
//
//   1. re-acquire: a thread lock + unlock on one attribute while the process holds the session lock
//   2. uncontended process-level acquire + release of a free session (Store level and public API)
//   3. cross-process handoff: two processes take turns on one session, every release driven by a
//      revoke request; one-way latency from the releaser's last instruction before release to the
//      next holder running
// Floors: a robust process-shared pthread mutex lock+unlock in shared memory (1, 2) and a futex
// ping-pong between two processes (3).
//
// In-process costs are timed in batches (a clock read costs as much as the thing measured), so
// their percentiles are over batch means; handoffs are timed one by one.
#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include "clock.hpp"
#include "segment.hpp"
#include "sessionbroker/client.hpp"
#include "sessionbroker/shm/futex.hpp"
#include "sessionbroker/shm/robust_mutex.hpp"
#include "lock_table.hpp"
#include "registry.hpp"

using namespace sessionbroker;
using namespace std::chrono_literals;

namespace {

struct Stats {
  double p50, p99;
};

Stats percentiles(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v[std::min(v.size() - 1, v.size() * 99 / 100)]};
}

// Runs op() `batch` times per sample; returns ns per op for each sample.
Stats batched(int samples, int batch, const std::function<void()>& op) {
  std::vector<double> ns;
  for (int s = 0; s < samples; ++s) {
    const auto t0 = detail::mono_ns();
    for (int i = 0; i < batch; ++i) op();
    ns.push_back(static_cast<double>(detail::mono_ns() - t0) / batch);
  }
  return percentiles(std::move(ns));
}

void row(const char* name, Stats s, const Stats* floor = nullptr) {
  fmt::print("{:<58} {:>10.1f} {:>10.1f}", name, s.p50, s.p99);
  if (floor) fmt::print("   {:>6.2f}x", s.p50 / floor->p50);
  fmt::print("\n");
}

template <class T>
T* shared_anon() {
  void* p = mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  return new (p) T{};
}

// Two processes alternate on `turn`; each measures now - the other's hand-off timestamp.
std::vector<double> futex_ping_pong(int rounds) {
  struct Shared {
    std::uint32_t turn;
    std::uint64_t sent_ns;
  };
  auto* sh = shared_anon<Shared>();
  auto play = [&](std::uint32_t me, std::vector<double>* out) {
    for (int i = 0; i < rounds; ++i) {
      std::uint32_t t;
      while ((t = shm::load(sh->turn)) % 2 != me) shm::futex_wait(sh->turn, t, shm::Clock::now() + 1s);
      if (out) out->push_back(static_cast<double>(detail::mono_ns() - shm::load(sh->sent_ns)));
      shm::store(sh->sent_ns, detail::mono_ns());
      shm::bump_and_wake(sh->turn);
    }
  };
  std::vector<double> samples;
  pid_t pid = fork();
  if (pid == 0) {
    play(1, nullptr);
    _exit(0);
  }
  play(0, &samples);
  waitpid(pid, nullptr, 0);
  samples.erase(samples.begin());  // the first turn has no sender
  return samples;
}

// Two client processes take turns on session "pp". The holder waits until its revoke callback says
// the other process is queued (asleep on its wait word), stamps the time and unlocks its thread
// lock; the pending revoke makes that unlock release the process lock, and the waiter, once
// granted, records now - stamp. Every handoff is thus a revoke-driven release to a sleeping waiter.
std::vector<double> session_handoff(const std::string& segment, int rounds) {
  struct Shared {
    std::uint64_t sent_ns;
    std::uint32_t done;
  };
  auto* sh = shared_anon<Shared>();
  auto play = [&](std::vector<double>* out) {
    auto c = Client::attach(segment);
    std::mutex m;
    std::condition_variable cv;
    int requests = 0;
    (*c)->on_revoke([&](const RevokeEvent& e) {
      if (e.kind != RevokeEvent::Kind::kRequested) return;
      std::lock_guard lk(m);
      ++requests;
      cv.notify_all();
    });
    auto s = (*c)->open("pp");
    for (int i = 0; i < rounds; ++i) {
      auto l = s->lock({"a"}, Mode::kExclusive, in(10s));
      const std::uint64_t now = detail::mono_ns(), sent = shm::load(sh->sent_ns);
      if (out && sent) out->push_back(static_cast<double>(now - sent));
      std::unique_lock lk(m);
      cv.wait_for(lk, 10s, [&] { return requests > 0 || shm::load(sh->done) > 0; });
      requests = 0;
      lk.unlock();
      shm::store(sh->sent_ns, detail::mono_ns());
      (void)l->unlock();
    }
    shm::fetch_add<std::uint32_t>(sh->done, 1);
    (void)(*c)->detach();
  };
  std::vector<double> samples;
  pid_t pid = fork();
  if (pid == 0) {
    play(nullptr);
    _exit(0);
  }
  play(&samples);
  waitpid(pid, nullptr, 0);
  if (samples.size() > 10) samples.erase(samples.begin(), samples.begin() + 10);  // warm-up
  return samples;
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  const int samples = quick ? 200 : 2000, batch = 1000, rounds = quick ? 2000 : 20000;
  const std::string name = fmt::format("sb-quickbench-{}", getpid());
  detail::CreateOptions opts;
  opts.caps = {8, 64, 1024, 4096, 65536, 0, 0, 0};
  auto seg = detail::Segment::create(name, opts);
  if (!seg) {
    fmt::print(stderr, "{}\n", seg.status().to_string());
    return 1;
  }
  detail::Registry registry(**seg);
  detail::LockTable locks(**seg, registry);

  auto* floor_mutex = shared_anon<shm::RobustMutexData>();
  shm::robust_mutex_init(*floor_mutex);
  const Stats floor = batched(samples, batch, [&] {
    shm::robust_mutex_lock(*floor_mutex);
    shm::robust_mutex_unlock(*floor_mutex);
  });

  fmt::print("{:<58} {:>10} {:>10}   {}\n", "scenario (ns)", "p50", "p99", "p50 / floor");
  row("floor: robust pshared pthread mutex lock+unlock", floor);

  auto client = Client::attach(name);
  auto session = (*client)->create("cached");
  { auto warm = session->lock({"a"}, Mode::kExclusive, in(1s)); }
  row("1. thread re-acquire of a cached lock (lock+unlock)",
      batched(samples, batch, [&] { (void)session->lock({"a"}, Mode::kExclusive, in(1s)); }), &floor);

  auto me = registry.attach_client(getpid());
  auto ref = registry.create_session("free", 0);
  const std::uint32_t rec = (*seg)->first_record_of(*me);
  row("2a. process acquire+release, free session (Store)", batched(samples, batch, [&] {
        auto g = locks.acquire(*me, rec, *ref, shm::LockMode::kExclusive, shm::Clock::now());
        (void)locks.release(*ref, *g);
      }), &floor);
  auto fresh = (*client)->create("uncached");
  row("2b. process acquire+thread lock+unlock+release (public API)", batched(samples, batch / 10, [&] {
        (void)fresh->lock({"a"}, Mode::kExclusive, in(1s));
        (void)fresh->release(in(1s));
      }), &floor);
  registry.detach_client(*me, (*seg)->client(*me).generation);

  const Stats futex_floor = percentiles(futex_ping_pong(rounds));
  row("floor: futex ping-pong between two processes, one way", futex_floor);
  (void)(*client)->create("pp");
  row("3. cross-process handoff on release, one way", percentiles(session_handoff(name, rounds)), &futex_floor);

  (void)(*client)->detach();
  detail::Segment::remove(name);
  return 0;
}
