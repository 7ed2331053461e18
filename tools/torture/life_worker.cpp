#include "life_worker.hpp"

#include <csignal>
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "sessionbroker/client.hpp"
#include "value.hpp"

namespace torture {
namespace {
bool g_forked_child = false;  // set in a lifecycle worker's forked child
}  // namespace
}  // namespace torture

// LeakSanitizer asks this before its check at exit(): a child forked from a multithreaded process
// holds objects that only its parent's other threads reference, which it would report as leaks.
extern "C" __attribute__((visibility("default"), used)) int __lsan_is_turned_off();
extern "C" int __lsan_is_turned_off() { return torture::g_forked_child ? 1 : 0; }

namespace torture {

namespace {

using namespace sessionbroker;
using namespace std::chrono_literals;

constexpr auto kLockWait = 5s;
std::string attr_name(int a) { return "a" + std::to_string(a); }
void sleep_us(int us) { std::this_thread::sleep_for(std::chrono::microseconds(us)); }

// One Client of the process with its handles on the stable sessions. A generation is kept until
// the process ends: another thread may still be using one that was detached under it.
struct Gen {
  std::unique_ptr<Client> client;
  std::vector<Session> sessions;
  std::atomic<bool> detached{false};  // set before detach(): kDetached / kStaleToken are then expected
};

// What one thread (or forked child) owns: its random stream, its commit log, its pending commit.
struct Actor {
  struct Pending {
    int session, attr;
    Value value;
  };
  Actor(const LifeConfig& cfg, const std::string& name, std::uint64_t seed)
      : rng(seed), log_fd(::open(fmt::format("{}/{}.log", cfg.log_dir, name).c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)) {}
  ~Actor() { ::close(log_fd); }
  int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); }
  std::mt19937_64 rng;
  int log_fd;
  std::vector<Pending> pending;
};

class Process {
 public:
  Process(const LifeConfig& cfg, Shared* sh, LifeCounters* life) : cfg_(cfg), sh_(sh), life_(life) {
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&fork_gate_, &attr);
  }

  [[noreturn]] void run() {
    Actor first(cfg_, fmt::format("p{}-setup", cfg_.id), cfg_.seed);  // logs nothing
    auto g = new_gen(first);
    if (!g) _exit(20);
    current_ = g.get();
    gens_.push_back(std::move(g));
    running_ = cfg_.threads;
    for (int k = 1; k < cfg_.threads; ++k) std::thread([this, k, seed = first.rng()] { thread_main(k, seed); }).detach();
    if ((cfg_.events & kPthreadExitEvent) && first.pick(2) == 0) exit_main_at_ = Clock::now() + std::chrono::milliseconds(first.pick(cfg_.round_ms));
    thread_main(0, first.rng());
  }

 private:
  // A thread's life: operations with, now and then, a lifecycle event instead.
  [[noreturn]] void thread_main(int k, std::uint64_t seed) {
    {
      Actor a(cfg_, fmt::format("p{}-t{}", cfg_.id, k), seed);
      while (sh_->stop.load(std::memory_order_relaxed) == 0) {
        if (k == 0 && exit_main_at_ && Clock::now() >= *exit_main_at_) break;
        const int r = a.pick(400);
        if (r == 1 && (cfg_.events & kForkEvent)) {
          fork_child(a);
          continue;
        }
        pthread_rwlock_rdlock(&fork_gate_);
        if (r == 0 && (cfg_.events & kDetachEvent)) detach_and_reattach(a);
        else one_op(a, *current(), r < 80);
        pthread_rwlock_unlock(&fork_gate_);
      }
    }
    if (k == 0 && sh_->stop.load() == 0) after_main_exit_ = true, life_->pthread_exits++;
    leave();
  }

  // The last thread out detaches and ends the process; the others (main included) pthread_exit().
  [[noreturn]] void leave() {
    if (--running_ > 0) pthread_exit(nullptr);
    (void)current()->client->detach();
    _exit(0);
  }

  Gen* current() {
    std::lock_guard lk(mu_);
    return current_;
  }

  std::unique_ptr<Gen> new_gen(Actor& a) {
    auto g = std::make_unique<Gen>();
    for (int attempt = 0; attempt < 100 && !g->client; ++attempt) {
      auto c = Client::attach(cfg_.segment);
      if (c) g->client = std::move(*c);
      else if (c.code() != ErrorCode::kCapacityExceeded) return report(c.status(), "attach"), nullptr;
    }
    if (!g->client) return nullptr;
    for (int s = 0; s < cfg_.sessions; ++s) {
      auto h = g->client->open("t" + std::to_string(s));
      if (!h) return report(h.status(), "open"), nullptr;
      g->sessions.push_back(*h);
    }
    if (a.pick(2) == 0) {
      const int ms = 1 + a.pick(5);
      g->client->on_revoke([this, ms](const RevokeEvent& e) {
        if (e.kind != RevokeEvent::Kind::kRequested) return;
        life_->slow_callbacks++;
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      });
    }
    return g;
  }

  // Detaches the current Client while the other threads are mid-operation, then attaches anew.
  void detach_and_reattach(Actor& a) {
    Gen* old = current();
    if (old->detached.exchange(true)) return;
    life_->detaches++;
    if (Status st = old->client->detach(); !st) report(st, "detach");
    auto g = new_gen(a);
    if (!g) return;  // reported; the other threads keep failing with kDetached until the next try
    std::lock_guard lk(mu_);
    current_ = g.get();
    gens_.push_back(std::move(g));
    life_->reattaches++;
  }

  // Forks at a quiet moment (no thread inside the library: sanitizer allocators are not fork-safe),
  // then kills the child now and then, and reaps it.
  void fork_child(Actor& a) {
    pthread_rwlock_wrlock(&fork_gate_);
    std::unique_lock lk(mu_);
    std::fflush(nullptr);
    const std::uint64_t child_seed = a.rng();
    const pid_t pid = fork();
    if (pid == 0) child_main(child_seed);
    lk.unlock();
    pthread_rwlock_unlock(&fork_gate_);
    if (pid < 0) return;
    life_->forks++;
    const bool kill_it = a.pick(3) == 0;
    if (kill_it) sleep_us(a.pick(20000)), ::kill(pid, SIGKILL), life_->child_kills++;
    reap(pid, kill_it);
  }

  void reap(pid_t pid, bool killed) {
    int status = 0;
    for (int i = 0; i < 10000 && waitpid(pid, &status, WNOHANG) == 0; ++i) sleep_us(1000);
    if (waitpid(pid, &status, WNOHANG) == 0) {
      message(fmt::format("child {} hung for 10 s", pid));
      ::kill(pid, SIGKILL), waitpid(pid, &status, 0), life_->bad_children++;
    } else if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0) && !(killed && WIFSIGNALED(status))) {
      message(fmt::format("child {} ended with status {:#x}", pid, status));
      life_->bad_children++;
    }
  }

  // The child drops every handle it inherited (that must not touch the parent's registration),
  // attaches its own Client, works for a few ms and exits in one of three ways.
  [[noreturn]] void child_main(std::uint64_t seed) {
    g_forked_child = true;
    std::vector<std::unique_ptr<Gen>> inherited;
    inherited.swap(gens_);
    inherited.clear();  // ~Client of every generation in a forked child
    Actor a(cfg_, fmt::format("p{}-c{}", cfg_.id, seed % 1000000007), seed);
    auto g = new_gen(a);
    if (!g) _exit(3);
    const auto end = Clock::now() + std::chrono::milliseconds(5 + a.pick(40));
    while (Clock::now() < end && sh_->stop.load() == 0) one_op(a, *g, a.pick(5) == 0);
    const int how = a.pick(3);
    if (how == 0) _exit(0);
    if (how == 1) g.reset();
    std::exit(0);  // static destructors and atexit handlers run in the child
  }

  void one_op(Actor& a, Gen& g, bool on_volatile) {
    life_->ops++;
    if (on_volatile) volatile_op(a, g);
    else stable_op(a, g);
  }

  // Lock (some attributes or all, shared or exclusive) / read / write / commit / unlock on a stable
  // session: every commit acknowledged is logged and checked later as in the kill torture.
  void stable_op(Actor& a, Gen& g) {
    const int s = a.pick(cfg_.sessions);
    std::vector<int> attrs{a.pick(cfg_.attrs)};
    const bool whole = a.pick(8) == 0, write = a.pick(4) != 0;
    if (whole) attrs.resize(0);
    for (int i = 0; i < cfg_.attrs && whole; ++i) attrs.push_back(i);
    if (!whole && a.pick(2) == 0 && attrs[0] != cfg_.attrs - 1) attrs.push_back(cfg_.attrs - 1);
    std::vector<std::string> names;
    for (int at : attrs) names.push_back(attr_name(at));
    const Mode mode = write ? Mode::kExclusive : Mode::kShared;
    auto& session = g.sessions[static_cast<std::size_t>(s)];
    auto lock = whole ? session.lock_all(mode, in(kLockWait)) : session.lock(names, mode, in(kLockWait));
    if (!lock) return failed(a, g, lock.status(), true, "lock");
    for (std::size_t i = 0; i < attrs.size(); ++i) {
      auto current = read_checked(a, g, *lock, s, attrs[i], true);
      if (!current) return;
      if (!write) continue;
      Value v{cfg_.id, ++life_->seq, lock->token(), current->token, current->seq, payload(a)};
      if (Status st = lock->put(names[i], encode(v)); !st) return failed(a, g, st, true, "put");
      a.pending.push_back({s, attrs[i], v});
    }
    if (a.pick(8) == 0) sleep_us(a.pick(2000));
    if (write) {
      if (Status st = lock->commit(); !st) return failed(a, g, st, true, "commit");
      acknowledge(a);
    }
    if (Status st = lock->unlock(); !st) return failed(a, g, st, true, "unlock");
    if (a.pick(16) == 0)
      if (Status st = session.release(in(kLockWait)); !st && st.code() != ErrorCode::kNotHeld) failed(a, g, st, true, "release");
  }

  // A volatile session: destroyed and re-created at random, so only tearing is checked.
  void volatile_op(Actor& a, Gen& g) {
    const std::string id = "v" + std::to_string(a.pick(cfg_.volatile_sessions));
    const int r = a.pick(16);
    if (r == 0 && (cfg_.events & kDestroyEvent)) {
      Status st = g.client->destroy(id, in(kLockWait));
      if (st) life_->destroys++;
      else if (st.code() != ErrorCode::kNotFound) failed(a, g, st, false, "destroy");
      return;
    }
    auto session = g.client->open(id);
    if (!session && session.code() == ErrorCode::kNotFound) {
      if (auto c = g.client->create(id); c) life_->recreates++;
      return;
    }
    if (!session) return failed(a, g, session.status(), false, "open");
    const int at = a.pick(cfg_.attrs);
    auto lock = session->lock({attr_name(at)}, r < 4 ? Mode::kShared : Mode::kExclusive, in(kLockWait));
    if (!lock) return failed(a, g, lock.status(), false, "lock");
    auto current = read_checked(a, g, *lock, 0, at, false);
    if (!current || r < 4) return;
    Value v{cfg_.id, ++life_->seq, lock->token(), current->token, current->seq, payload(a)};
    if (Status st = lock->put(attr_name(at), encode(v)); !st) return failed(a, g, st, false, "put");
    if (Status st = lock->unlock(); !st) return failed(a, g, st, false, "unlock");
  }

  // The committed value: whole, and (stable sessions) no older than the newest acknowledged commit,
  // read before the value so that a commit acknowledged meanwhile cannot look lost.
  std::optional<Value> read_checked(Actor& a, Gen& g, SessionLock& lock, int s, int at, bool stable) {
    const Value acked{0, sh_->acked[s][at].seq.load(), sh_->acked[s][at].token.load(), 0, 0, {}};
    auto got = lock.get(attr_name(at));
    if (!got) return failed(a, g, got.status(), stable, "get"), std::nullopt;
    sh_->reads++;
    if (!got->has_value()) {
      if (stable && acked.token != 0) sh_->lost++, message(fmt::format("t{}.a{} empty after {}.{}", s, at, acked.token, acked.seq));
      return Value{};
    }
    auto v = decode(**got);
    if (!v) return sh_->torn++, message(fmt::format("{}{}.a{} torn", stable ? "t" : "v", s, at)), Value{};
    if (stable && acked.after(*v))
      sh_->lost++, message(fmt::format("t{}.a{}: read {}.{} older than acknowledged {}.{}", s, at, v->token, v->seq, acked.token, acked.seq));
    return v;
  }

  // Logged before published, both before the thread lock is let go (as worker.cpp does).
  void acknowledge(Actor& a) {
    std::string lines;
    for (auto& p : a.pending) lines += commit_line(p.session, p.attr, p.value);
    (void)!::write(a.log_fd, lines.data(), lines.size());
    for (auto& p : a.pending) {
      sh_->acked[p.session][p.attr].token.store(p.value.token);
      sh_->acked[p.session][p.attr].seq.store(p.value.seq);
      sh_->commits++;
      if (after_main_exit_) life_->commits_after_pthread_exit++;
    }
    a.pending.clear();
  }

  // Sorts a failure: expected after our own detach (or on a volatile session, a destroy), else a
  // violation of its kind.
  void failed(Actor& a, Gen& g, const Status& st, bool stable, const char* what) {
    a.pending.clear();
    if (g.detached.load() && (st.code() == ErrorCode::kDetached || st.code() == ErrorCode::kStaleToken || st.code() == ErrorCode::kNotHeld))
      return sleep_us(100);  // until the detaching thread has attached anew
    if (!stable && (st.code() == ErrorCode::kStaleToken || st.code() == ErrorCode::kNotFound)) return;
    if (st.code() == ErrorCode::kDetached) life_->spurious_detaches++;
    else if (st.code() == ErrorCode::kStaleToken) life_->lost_locks++;
    else if (st.code() == ErrorCode::kTimeout) life_->timeouts++;
    else sh_->errors++;
    message(fmt::format("{}{}: {}", what, after_main_exit_ ? " (after pthread_exit)" : "", st.to_string()));
  }

  void report(const Status& st, const char* what) { sh_->errors++, message(fmt::format("{}: {}", what, st.to_string())); }

  void message(const std::string& m) {
    if (life_->messages++ < 40) fmt::print(stderr, "  lifecycle worker {} (pid {}): {}\n", cfg_.id, getpid(), m);
  }

  std::string payload(Actor& a) {
    std::string p(static_cast<std::size_t>(a.pick(1500)), '\0');
    for (auto& ch : p) ch = static_cast<char>('a' + a.pick(26));
    return p;
  }

  const LifeConfig cfg_;  // a copy: the caller's frame is unwound when main pthread_exit()s
  Shared* sh_;
  LifeCounters* life_;
  std::mutex mu_;                           // guards gens_ and current_
  std::vector<std::unique_ptr<Gen>> gens_;  // every Client this process attached
  Gen* current_ = nullptr;
  std::atomic<int> running_{0};
  std::optional<Clock::time_point> exit_main_at_;
  std::atomic<bool> after_main_exit_{false};
  pthread_rwlock_t fork_gate_;  // operations read-lock it, fork write-locks it
};

}  // namespace

void run_life_worker(const LifeConfig& cfg, Shared* shared, LifeCounters* life) {
  auto* p = new Process(cfg, shared, life);  // outlives the main thread if it pthread_exit()s
  p->run();
}

}  // namespace torture
