// sb_etcd: sessionbroker's etcd backend beside etcd's own lock service (v3lock), on one 3-member
// loopback cluster, in one run (bench/etcd/run.sh starts the cluster).
//
// Process safety, and why every measurement runs in a child. Debian's gRPC has no fork support:
// a process forked from one that already used gRPC hangs in its first gRPC call. So the bench's
// main process never touches etcd: it forks a child (or a pair, or a holder and a waiter) per
// measurement, and each child attaches, measures, writes its samples into shared anonymous
// memory and exits. session-broker is exec'd (BrokerChild), so it starts with no gRPC state.
//
// Every scenario function below runs in a child and returns its exit status (0: samples written).
#pragma once

#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdint>
#include <string>
#include <vector>

namespace sbetcd {

// Samples written by children; lives in MAP_SHARED memory made before the fork.
struct Samples {
  static constexpr int kMax = 20000;
  std::atomic<int> count;     // slots claimed (may exceed kMax; only the first kMax are kept)
  std::atomic<bool> stop;     // set by whoever has taken the last sample
  std::atomic<int> ready;     // processes attached (a start barrier for pairs)
  std::atomic<int> last_holder;
  std::atomic<std::uint64_t> released_ns;  // when the last holder called release / Unlock
  std::atomic<int> agent;                  // a recovery holder's etcd agent (its child process)
  std::atomic<std::uint64_t> cpu_ns;       // CPU time per timed operation of the client (with its agent)
  double ns[kMax];

  void add(double v, int limit) {
    const int i = count.fetch_add(1, std::memory_order_relaxed);
    if (i < limit && i < kMax) ns[i] = v;
    if (i + 1 >= limit) stop.store(true, std::memory_order_release);
  }
  std::vector<double> take(int limit) const;
  void reset();
};

// A fresh Samples in shared memory (never unmapped: the bench is short).
Samples* shared_samples();

// Two measurements in two processes taking turns, a block of operations each, so that this
// machine's drift in speed (a cluster on the same two cores; a VM whose speed wanders by tens of
// percent within minutes) falls on both alike and their ratio is not an accident of which ran
// first. Lives in shared memory (make() before the fork); the waiting side sleeps on the turn
// word (shm::futex_wait). A side that finished leaves every later turn to the other; a side that
// waited kTurnWait for its turn (the other stuck, or killed before it could finish) stops waiting.
class Turns {
 public:
  static constexpr std::chrono::seconds kTurnWait{60};
  static Turns* make(int block);
  // Before operation i of side `me` (0 goes first): at a block's start, waits for this side's turn.
  void before(int me, int i);
  // After operation i: at a block's end, hands the turn over.
  void after(int me, int i);
  // This side has no more operations (call it on every way out, failures included).
  void finish(int me);

 private:
  void hand_over(int me);
  int block_ = 1;
  std::uint32_t turn_ = 0;      // whose turn (0 or 1); futex word, accessed through atomic_ref
  std::uint32_t done_[2] = {};  // atomic_ref
};

// One side's part in Turns for a timed loop (no-op without Turns): finishes on every way out.
class Turn {
 public:
  Turn(Turns* turns, int me) : turns_(turns), me_(me) {}
  ~Turn() {
    if (turns_) turns_->finish(me_);
  }
  Turn(const Turn&) = delete;
  Turn& operator=(const Turn&) = delete;
  void before(int i) {
    if (turns_) turns_->before(me_, i);
  }
  void after(int i) {
    if (turns_) turns_->after(me_, i);
  }

 private:
  Turns* turns_;
  int me_;
};

// CPU time (user + system, every thread) of this process (pid 0) or of process `pid`, in ns: the
// client's cost on a machine where the cluster runs on the same cores. /proc's ticks are 10 ms, so
// it is read around a whole timed loop, not per operation.
std::uint64_t cpu_ns_of(int pid);
// This process's only child (the etcd agent Client::attach started), or 0.
int only_child();

struct Target {
  std::string address;                 // etcd://e0,e1,e2/PREFIX for the public API
  std::vector<std::string> endpoints;  // the same members, for etcd::Client (the v3lock peer)
};

// ---- sessionbroker through the public API (sb_scenarios.cpp) ----
// lock_all + unlock + Session::release, uncontended; with `turns`, as side `me` of two.
int sb_acquire_release(const std::string& store, int n, Samples& out, Turns* turns = nullptr, int me = 0);
// Lock, put 64 B, unlock (the commit). `cached`: the process lock stays cached between
// iterations (the normal case); otherwise Session::release after each, so every one is a grant.
int sb_fenced_commit(const std::string& store, int n, bool cached, Samples& out, Turns* turns = nullptr, int me = 0);
// A thread lock + unlock on a cached process lock, timed in batches of `batch` (per-op ns).
int sb_cached_reacquire(const std::string& store, int batches, int batch, Samples& out);
// One of two processes taking turns on one session: each holds until the other queues (its
// revoke request), then unlocks; the sample is the release call -> the other's grant.
int sb_handoff_player(const std::string& store, int me, int n, Samples& shared);
// Dead-holder recovery: a holder registered under host id `host` takes the session's exclusive
// lock, stores the pid of its etcd agent (docs/etcd.md "Fork: the agent process") in out.agent,
// writes one byte on `held_fd` and waits to be killed; a waiter writes one byte on `asking_fd`,
// then lock_all, and stores its grant time in out.released_ns.
int sb_holder(const std::string& store, const std::string& host, const std::string& session, int held_fd,
              Samples& out);
int sb_waiter(const std::string& store, const std::string& session, int asking_fd, Samples& out);

// ---- etcd's v3lock through etcd::Client (v3lock_scenarios.cpp) ----
int v3_lock_unlock(const std::vector<std::string>& endpoints, int n, Samples& out, Turns* turns = nullptr, int me = 0);
// The backend's queue txn and release alone, in process (no agent, no library), with a watch
// open on the session's range that gets every event (as the backend's holder watch), DELETEs only, or none.
enum class FloorWatch { kNone, kAll, kDeletes };
int txn_pair_floor(const std::vector<std::string>& endpoints, int n, FloorWatch watch, Samples& out,
                   Turns* turns = nullptr, int me = 0);
// Lock, put guarded by the lock key's existence (a txn), Unlock.
int v3_fenced_put(const std::vector<std::string>& endpoints, int n, Samples& out, Turns* turns = nullptr, int me = 0);
// As sb_handoff_player: holds until the other's key is queued, then Unlock; sample: Unlock -> grant.
int v3_handoff_player(const std::vector<std::string>& endpoints, int me, int n, Samples& shared);
// A v3lock holder on a kept-alive lease of `ttl_s` seconds: takes the lock, writes one byte on
// `held_fd`, then waits to be killed.
int v3_holder(const std::vector<std::string>& endpoints, const std::string& name, int ttl_s, int held_fd);
// Writes one byte on `asking_fd`, then Lock; stores the grant time in out.released_ns.
int v3_waiter(const std::vector<std::string>& endpoints, const std::string& name, int asking_fd, Samples& out);

// ---- processes (procs.cpp) ----
// Forks `fn` into a child; returns its pid (the child _exits with fn's return value).
// REQUIRES: this process has not used gRPC.
template <class Fn>
int spawn(Fn&& fn) {
  std::fflush(nullptr);
  const int pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // a bench killed midway leaves no holder sleeping
    ::_exit(fn());
  }
  return pid;
}
// Waits for pid; true when it exited 0.
bool reap(int pid);
// Reads one byte from fd within `ms`; false on timeout or EOF.
bool read_byte(int fd, int ms);
void write_byte(int fd);
// CLOCK_MONOTONIC: one clock for all processes of the host (one-way latencies across them).
std::uint64_t now_ns();
std::vector<std::string> split(const std::string& csv);

}  // namespace sbetcd
