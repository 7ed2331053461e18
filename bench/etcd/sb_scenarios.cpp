// sessionbroker's side of sb_etcd: the public API only (Client, Session, SessionLock), on
// whatever store the address names (etcd://... or a shared-memory segment). Each function runs in
// a child process of its own (etcd_bench.hpp) and returns its exit status.
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <thread>

#include "etcd_bench.hpp"
#include "sessionbroker/client.hpp"

namespace sbetcd {
namespace {

using namespace std::chrono_literals;
using sessionbroker::Client;
using sessionbroker::Mode;
using sessionbroker::RevokeEvent;
using sessionbroker::Session;
using sessionbroker::in;

constexpr int kWarmup = 5;

int fail(const char* what, const sessionbroker::Status& st) {
  std::fprintf(stderr, "sb_etcd: %s: %s\n", what, st.to_string().c_str());
  return 1;
}

// One lock_all + unlock + release; false (and a message) on any error.
bool acquire_release(Session& s) {
  auto l = s.lock_all(Mode::kExclusive, in(10s));
  if (!l) return fail("lock_all", l.status()), false;
  if (auto st = l->unlock(); !st) return fail("unlock", st), false;
  if (auto st = s.release(in(10s)); !st) return fail("release", st), false;
  return true;
}

bool lock_put_unlock(Session& s, const std::string& value) {
  auto l = s.lock({"v"}, Mode::kExclusive, in(10s));
  if (!l) return fail("lock", l.status()), false;
  if (auto st = l->put("v", value); !st) return fail("put", st), false;
  if (auto st = l->unlock(); !st) return fail("unlock (commit)", st), false;
  return true;
}

}  // namespace

int sb_acquire_release(const std::string& store, int n, Samples& out, Turns* turns, int me) {
  Turn turn(turns, me);
  auto c = Client::attach(store);
  if (!c) return fail("attach", c.status());
  auto s = (*c)->open_or_create("acquire");
  if (!s) return fail("open_or_create", s.status());
  for (int i = 0; i < kWarmup; ++i) {
    if (!acquire_release(s->session)) return 1;
  }
  const int agent = only_child();  // 0 on a shared-memory store
  auto cpu = [&] { return cpu_ns_of(0) + (agent ? cpu_ns_of(agent) : 0); };
  // Waiting for its turn costs no CPU (a futex sleep; the agent idles), so the loop's CPU is the operations'.
  const std::uint64_t cpu0 = cpu();
  for (int i = 0; i < n; ++i) {
    turn.before(i);
    const auto t0 = now_ns();
    if (!acquire_release(s->session)) return 1;
    out.add(static_cast<double>(now_ns() - t0), n);
    turn.after(i);
  }
  out.cpu_ns.store((cpu() - cpu0) / static_cast<std::uint64_t>(n));
  return 0;
}

int sb_fenced_commit(const std::string& store, int n, bool cached, Samples& out, Turns* turns, int me) {
  Turn turn(turns, me);
  auto c = Client::attach(store);
  if (!c) return fail("attach", c.status());
  auto s = (*c)->open_or_create(cached ? "commit.cached" : "commit.granted");
  if (!s) return fail("open_or_create", s.status());
  const std::string value(64, 'x');
  for (int i = 0; i < kWarmup + n; ++i) {
    if (i >= kWarmup) turn.before(i - kWarmup);
    const auto t0 = now_ns();
    if (!lock_put_unlock(s->session, value)) return 1;
    if (!cached) {
      if (auto st = s->session.release(in(10s)); !st) return fail("release", st);
    }
    if (i >= kWarmup) {
      out.add(static_cast<double>(now_ns() - t0), n);
      turn.after(i - kWarmup);
    }
  }
  return 0;
}

int sb_cached_reacquire(const std::string& store, int batches, int batch, Samples& out) {
  auto c = Client::attach(store);
  if (!c) return fail("attach", c.status());
  auto s = (*c)->open_or_create("cached");
  if (!s) return fail("open_or_create", s.status());
  Session& session = s->session;
  if (!lock_put_unlock(session, "0")) return 1;  // the process lock is now cached
  const std::uint64_t token = session.token();
  for (int b = 0; b < batches + 1; ++b) {
    const auto t0 = now_ns();
    for (int i = 0; i < batch; ++i) {
      auto l = session.lock({"v"}, Mode::kExclusive, in(10s));
      if (!l) return fail("lock", l.status());
      if (auto st = l->unlock(); !st) return fail("unlock", st);
    }
    if (b > 0) out.add(static_cast<double>(now_ns() - t0) / batch, batches);  // batch 0 warms up
  }
  // Stayed local: the same grant served every lock (no other process asked for it).
  if (session.token() != token) return std::fprintf(stderr, "sb_etcd: the cached lock was re-granted\n"), 1;
  return 0;
}

// The two players alternate without a turn variable: each one, once granted, holds until the
// other has queued (the revoke request: the other is now waiting in lock_all), stamps, unlocks
// (the library gives the lock back at once, a revoke being pending) and asks again at once, which
// queues it behind the other.
int sb_handoff_player(const std::string& store, int me, int n, Samples& shared) {
  auto c = Client::attach(store);
  if (!c) return fail("attach", c.status());
  std::mutex mu;
  std::condition_variable cv;
  std::uint64_t requested = 0;  // the token a revoke request named last; guarded by mu
  (*c)->on_revoke([&](const RevokeEvent& e) {
    if (e.kind != RevokeEvent::Kind::kRequested) return;
    std::lock_guard lk(mu);
    requested = e.token;
    cv.notify_all();
  });
  auto s = (*c)->open_or_create("handoff");
  if (!s) return fail("open_or_create", s.status());
  shared.ready.fetch_add(1);
  while (shared.ready.load() < 2) std::this_thread::sleep_for(100us);
  while (true) {
    auto l = s->session.lock_all(Mode::kExclusive, in(10s));
    if (!l) return fail("lock_all", l.status());
    const std::uint64_t granted = now_ns();
    const bool stopping = shared.stop.load(std::memory_order_acquire);
    if (!stopping && shared.last_holder.exchange(me) != me && shared.released_ns.load() != 0)
      shared.add(static_cast<double>(granted - shared.released_ns.load()), n);
    const std::uint64_t token = l->token();
    {
      std::unique_lock lk(mu);
      if (!cv.wait_for(lk, 10s, [&] { return requested == token || shared.stop.load(); }))
        return std::fprintf(stderr, "sb_etcd: the other player never queued\n"), 1;
    }
    shared.released_ns.store(now_ns());
    if (auto st = l->unlock(); !st) return fail("unlock", st);
    if (stopping || shared.stop.load()) break;
  }
  return 0;
}

int sb_holder(const std::string& store, const std::string& host, const std::string& session, int held_fd,
              Samples& out) {
  if (!host.empty()) setenv("SESSIONBROKER_HOST_ID", host.c_str(), 1);
  auto c = Client::attach(store);
  if (!c) return fail("attach", c.status());
  auto s = (*c)->open_or_create(session);
  if (!s) return fail("open_or_create", s.status());
  auto l = s->session.lock_all(Mode::kExclusive, in(10s));
  if (!l) return fail("lock_all", l.status());
  out.agent.store(only_child());  // the agent Client::attach started
  write_byte(held_fd);
  std::this_thread::sleep_for(120s);  // killed long before
  return 1;
}

int sb_waiter(const std::string& store, const std::string& session, int asking_fd, Samples& out) {
  auto c = Client::attach(store);
  if (!c) return fail("attach", c.status());
  auto s = (*c)->open(session);
  if (!s) return fail("open", s.status());
  write_byte(asking_fd);
  auto l = s->lock_all(Mode::kExclusive, in(30s));
  if (!l) return fail("lock_all (waiter)", l.status());
  out.released_ns.store(now_ns());
  return 0;
}

}  // namespace sbetcd
