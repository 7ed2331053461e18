// The process-local side of one session: the process-level lock (acquired, cached, released on a
// revoke request) and the thread locks on attributes or the whole session.
//
// Thread safety: every member is guarded by mu_ except the immutable ones (id_, handle_, client_)
// and the fast lane's (lane_ and what it hands over, below). A lane claim from kVacant and a lane
// release from kOpen* also own the process lock's members (state_, grant_, held_mode_,
// revoke_seen_, lost_) while lane_ is kBusy: every mu_ holder closes the lane first, which waits
// kBusy out, so it never reads them mid-change. Threads wait on cv_ with their
// deadline. The process lock is never released while a thread lock is held (users_ > 0); a revoke
// request or an explicit release stops new thread locks from being granted on the cached process
// lock, so waiting processes are not starved.
//
// Backend calls under mu_. On a backend whose non-waiting calls are memory operations
// (Backend::quick_calls(): shared memory) the uncontended grant (try_acquire) and every release
// run with mu_ held, so an uncontended lock and a release take mu_ once each (and that lock's
// unlock not at all: the thread lock went out through the fast lane, below); a request
// that must queue lets go of mu_ while it waits (state_ kAcquiring), and callbacks and the release
// of other sessions' idle locks (out of lock records) always run with mu_ let go. Lock order: mu_
// before a session mutex of the segment; nothing under a session mutex takes mu_.
//
// The fast lane. While the process lock is cached and nothing else happens on the session in
// this process (no thread lock held, no fresh grant, no revoke request, loss or release pending),
// one thread at a time may take a thread lock without mu_: a CAS on lane_ hands it lane_spare_,
// and a CAS gives it back at unlock. Both ends also read the grant's record (revoke and state
// words) and leave the work to the mutex side when either is raised, so a revoke request is
// honoured the moment the lane's holder lets go. The lane is process memory only: a crash of the
// process takes it along, and the segment never depends on it. lane_'s states:
//   kClosed    every thread lock goes through mu_.
//   kOpen*     opened under mu_ (maybe_open_lane) when users_ == 0, the lock is held in that mode and
//              need not be given back; grant_, lane_open_ and lane_spare_ are published with it.
//   kBusy      a claimer (from kOpen*; back to kOpen* if the grant's flags are raised) or a returner
//              (from kTaken) owns lane_spare_/lane_holder_ for a few instructions; close_lane()
//              waits it out.
//   kTaken     one thread holds a lock through the lane: *lane_holder_ says which portion. It is
//              not counted in users_/attrs_, and grant_ does not change meanwhile. Entered from
//              kBusy by a claimer, or straight from kClosed under mu_ by lock_slow, which gives
//              the thread lock it grants the lane when the lane could open then
//              (take_lane_locked), so that its unlock need not take mu_.
//   kAbsorbed  a thread under mu_ closed the lane while it was kTaken and counted the holder's
//              portion in users_/attrs_ (take_local); the holder's unlock then goes through mu_,
//              which returns its state to lane_spare_ and stores kClosed.
//   kVacant    the process lock is not held and nothing is pending (state_ kNone, no thread lock,
//              no release waiting, not detached, destroyed or retired) on a quick backend; opened
//              under mu_ (maybe_open_lane, once lane_spare_ exists: a session this process locked
//              before) or by a lane release. A claimer (kVacant -> kBusy)
//              acquires the process lock itself with Backend::try_acquire_kept, which leaves no trace
//              when it fails: granted, it holds its thread lock as kTaken (the lane opens kOpen* at
//              its unlock); busy or failed, it stores kVacant back and takes the mutex way.
// The lane release. Session::release() on an open lane (kOpen* -> kBusy: the process lock is held,
// idle, not asked back, and nobody waits on cv_ for it: see release_lane) gives the process lock
// back with Backend::release and stores kVacant. So a full cycle of lock, unlock and release on an
// idle session takes no mutex of this process: kVacant -> kTaken -> kOpen* -> kVacant. The claim
// and the release use the backend's lane pair (try_acquire_kept, release_kept), so what the grant
// used (a lock record on shared memory) stays with the session from one cycle to the next (keep_).
// Only a thread holding mu_ moves lane_ out of kClosed or kAbsorbed. mu_ is taken only through
// Held, which closes the lane every time it takes mu_, the first time and again after any let-go
// (a callback, a condition wait, a backend call): so whoever holds mu_ sees every thread lock, and
// no path can forget to close it. maybe_open_lane() opens it, as the last step before letting go.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fork_guard.hpp"
#include "sessionbroker/client.hpp"
#include "backend.hpp"

namespace sessionbroker::detail {

class Backend;
class ClientImpl;
class LocalSession;

// What a SessionLock owns: one thread's lock on part of a session, plus its uncommitted writes.
struct ThreadLockState {
  std::shared_ptr<LocalSession> session;
  std::shared_ptr<ClientImpl> client;  // keeps the backend alive while the lock exists
  std::vector<std::string> attrs;      // sorted, unique; empty when `whole`
  bool whole = false;
  Mode mode = Mode::kShared;
  Grant grant;
  ChangeSet changes;
  // The backend's copy of the committed state as this lock last read or committed it (backend.hpp
  // ReadCopy). Kept across uses with its buffer: the backend checks it is still current.
  ReadCopySlot copy;
  // What the backend gets: the slot of an exclusive lock; nullptr for a shared one, which never
  // commits (its reads copy nothing).
  ReadCopySlot* copy_slot() { return mode == Mode::kExclusive ? &copy : nullptr; }
  bool via_lane = false;  // taken through the fast lane: unlock gives it back there
  bool covers(std::string_view name) const;
  // Back to rest between uses (spare or lane state): no lane mark, no uncommitted writes, no grant.
  // The portion and the references stay, so the next lock reuses them.
  void clear_use() {
    via_lane = false;
    if (!changes.empty()) changes.clear();  // empty unless a commit failed
    grant = {};
  }
  // Sets the portion: `attrs` sorted and unique (keeping the strings' buffers), or the whole session.
  void set_portion(std::span<const std::string_view> names, bool whole_session, Mode m) {
    whole = whole_session;
    mode = m;
    if (names.size() == 1 && attrs.size() == 1 && same_name(attrs[0], names[0])) return;  // the same name again
    assign_names(names);
  }
  void assign_names(std::span<const std::string_view> names);
  // Names are short (kMaxAttrNameBytes): a loop beats a call to memcmp.
  static bool same_name(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
      if (a[i] != b[i]) return false;
    return true;
  }
};

class LocalSession : public std::enable_shared_from_this<LocalSession> {
 public:
  LocalSession(ClientImpl& client, Backend& backend, std::string id, SessionHandle handle)
      : client_(client),
        backend_(backend),
        id_(std::move(id)),
        handle_(handle),
        fork_epoch_(fork_epoch()),
        quick_(backend.quick_calls()) {}

  const std::string& id() const { return id_; }
  SessionHandle handle() const { return handle_; }

  // A thread lock on `attrs` (any order, duplicates allowed) or, with `whole`, on the session.
  // In steady state (the process lock cached, names seen before, at most kSpareStates locks
  // outstanding) it allocates nothing: states and attribute entries are reused.
  // The fast lane first (inline, so the public API's lock and unlock inline it), then mu_.
  Result<std::unique_ptr<ThreadLockState>> lock(std::span<const std::string_view> attrs, bool whole, Mode mode,
                                                Clock::time_point deadline) {
    if (!names_valid(attrs, whole)) return names_error(attrs, whole);
    bool busy = false;
    if (auto t = try_lane(attrs, whole, mode, busy)) return t;
    return lock_slow(attrs, whole, mode, deadline, true, busy);
  }
  // The same without waiting: granted at once, else kBusy. It waits for no thread of this process
  // (a conflicting thread lock, a process lock being acquired, given back or asked back: kBusy)
  // and acquires the process lock only with Backend::try_acquire, so a busy try leaves no trace in
  // the segment. An idle cached lock that is too weak (shared for an exclusive try) or lost is given
  // back first, as lock() does, then the try acquires.
  Result<std::unique_ptr<ThreadLockState>> try_lock(std::span<const std::string_view> attrs, bool whole, Mode mode) {
    if (!names_valid(attrs, whole)) return names_error(attrs, whole);
    bool busy = false;  // unused: after a busy claim lock_slow tries again, and reports what it finds
    if (auto t = try_lane(attrs, whole, mode, busy)) return t;
    return lock_slow(attrs, whole, mode, Clock::time_point::min(), false, false);
  }
  Status commit(ThreadLockState& t);
  // An explicit commit: like commit(), but with nothing pending it still reports kStaleToken
  // when the grant was taken away (broken, expired, evicted), so success means "still yours".
  Status confirm_and_commit(ThreadLockState& t);
  // Commits, drops the thread lock and keeps `t` for reuse. When the client is no longer usable
  // (detached or evicted) it only drops the thread lock and returns that error. A lane lock with
  // nothing to commit goes back through the lane. REQUIRES: not in a forked child (the caller
  // checks: the parent's mutexes may have been mid-use at the fork).
  Status unlock(std::unique_ptr<ThreadLockState> t) {
    if (t->via_lane && t->changes.empty() && return_lane(t)) return {};
    return unlock_slow(std::move(t));
  }
  // Destroys the session using the exclusive whole-session lock `t` holds.
  Status destroy_with(ThreadLockState& t);
  // Gives the process lock back once no thread uses it (through the lane when it is open).
  Status release(Clock::time_point deadline) {
    if (release_lane()) return {};
    return release_slow(deadline);
  }
  std::uint64_t token();
  bool held();

  // Revoke thread: looks at this session's revoke flag and lost state; releases when it can.
  // Also records the session's last use for idle expiry when a thread unlocked since the last call.
  void on_notification();
  // Releases the cached process lock if no thread uses it. Returns true if it did.
  bool release_if_idle();
  // Detach: releases the process lock whatever threads hold; later calls fail with kDetached.
  void detach();
  // Frees the spare lock states, which hold references to this session and the client (a cycle).
  // The client calls it before it lets go of the session. REQUIRES: the caller holds a reference
  // to this session and not mu_.
  void drop_spares();
  // The same in a forked child, where a thread of the parent may have held mu_ at the fork: frees
  // them if mu_ is free, else leaves them (a bounded leak in a child, never a deadlock).
  void drop_spares_in_child();

 private:
  enum class ProcState { kNone, kAcquiring, kHeld, kReleasing };
  // mu_, held: taking it (at construction and in lock()) closes the fast lane. See the top of the file.
  class Held {
   public:
    explicit Held(LocalSession& s) : s_(s), lk_(s.mu_) { s_.close_lane(); }
    Held(const Held&) = delete;
    Held& operator=(const Held&) = delete;
    void unlock() { lk_.unlock(); }
    void lock() {
      lk_.lock();
      s_.close_lane();
    }
    // False when the deadline passed. The lane is closed again on return, as after lock().
    bool wait_until(Clock::time_point deadline) {
      ++s_.cv_waiters_;
      const bool woken = s_.cv_.wait_until(lk_, deadline) == std::cv_status::no_timeout;
      --s_.cv_waiters_;
      s_.close_lane();
      return woken;
    }

   private:
    LocalSession& s_;
    std::unique_lock<std::mutex> lk_;
  };
  // One attribute some thread locked. Entries whose counts drop to zero stay (up to
  // kIdleAttrEntries) so that locking the same names again allocates nothing.
  struct AttrLock {
    std::string name;
    int shared = 0;
    bool exclusive = false;
    bool idle() const { return shared == 0 && !exclusive; }
  };
  static constexpr std::size_t kIdleAttrEntries = 64;
  static constexpr std::size_t kSpareStates = 16;

  static bool names_valid(std::span<const std::string_view> attrs, bool whole) {
    if (!whole && attrs.empty()) return false;
    for (const auto& a : attrs)
      if (a.empty() || a.size() > kMaxAttrNameBytes) return false;
    return true;
  }
  static Status names_error(std::span<const std::string_view> attrs, bool whole);  // REQUIRES: !names_valid
  // `wait` false: a try-lock (deadline unused), see try_lock(). `busy`: the backend just answered
  // a try_acquire of this request with kBusy (a lane claim), so the request queues at once.
  Result<std::unique_ptr<ThreadLockState>> lock_slow(std::span<const std::string_view> attrs, bool whole, Mode mode,
                                                     Clock::time_point deadline, bool wait, bool busy);
  // For a try-lock that cannot take a thread lock now: kBusy unless the process lock is free or an
  // idle one it may give back first (lost, or too weak: !may_use and nobody asked). REQUIRES: mu_
  Status busy_unless_free(bool may_use) const;
  Status unlock_slow(std::unique_ptr<ThreadLockState> t);
  AttrLock* find_attr(std::string_view name);                                    // REQUIRES: mu_
  bool locally_compatible(const ThreadLockState& t) const;                       // REQUIRES: mu_
  void take_local(const ThreadLockState& t);                                     // REQUIRES: mu_
  void drop_local(const ThreadLockState& t);                                     // REQUIRES: mu_
  // A cleared state with `attrs` filled in sorted and unique (reused when one is spare).
  std::unique_ptr<ThreadLockState> new_state(std::span<const std::string_view> attrs, bool whole, Mode mode);  // REQUIRES: mu_
  // Keeps `t` for reuse; returns it when there is no room, for the caller to destroy with mu_ free.
  std::unique_ptr<ThreadLockState> recycle(std::unique_ptr<ThreadLockState> t);  // REQUIRES: mu_
  // The fast lane (see the top of this file). try_lane: a thread lock without mu_, or nullptr when
  // the lane is not open for it (`busy` set when a claim from kVacant found the session busy).
  // claim_vacant: its kVacant half. return_lane: gives a lane lock back without mu_; false when
  // the lane was absorbed meanwhile (then the caller unlocks through mu_). release_lane: gives the
  // idle process lock back without mu_; false when the lane is not open.
  std::unique_ptr<ThreadLockState> try_lane(std::span<const std::string_view> attrs, bool whole, Mode mode, bool& busy);
  std::unique_ptr<ThreadLockState> claim_vacant(std::span<const std::string_view> attrs, bool whole, Mode mode,
                                                bool& busy);
  bool return_lane(std::unique_ptr<ThreadLockState>& t);
  bool release_lane();
  Status release_slow(Clock::time_point deadline);  // release() when the lane did not take it
  // kBusy -> kTaken: the lane's state, set for `attrs`, goes to the claimer. REQUIRES: the caller
  // moved lane_ to kBusy, and grant_ is the grant it holds the lock under.
  std::unique_ptr<ThreadLockState> hand_out_lane(std::span<const std::string_view> attrs, bool whole, Mode mode);
  void close_lane();      // REQUIRES: mu_ (Held calls it)
  std::uint32_t lane_to_open() const;     // REQUIRES: mu_. The kOpen* or kVacant it may open, else kClosed
  void maybe_open_lane();                 // REQUIRES: mu_
  bool take_lane_locked(ThreadLockState& t);  // REQUIRES: mu_; false: count `t` with take_local
  Status usable_locked() const;                                                  // REQUIRES: mu_
  Status acquire_process_lock(Held& lk, Mode need, Clock::time_point deadline, bool wait, bool try_first);
  void release_process_lock(Held& lk);
  bool must_give_back() const { return revoke_seen_ || lost_ || release_waiters_ > 0; }  // REQUIRES: mu_
  // May the process lock be given back now? Not while a thread uses it, nor while the grant is
  // fresh (its acquiring thread has not had its turn). REQUIRES: mu_
  bool idle() const { return users_ == 0 && !fresh_grant_; }
  // Notes a revoke request or a loss flagged in the segment for the held grant, telling the
  // callback with mu_ released. Any thread may notice first; the revoke thread is only the backstop
  // for a process whose threads are idle. REQUIRES: lk holds mu_.
  void observe_segment_flags(Held& lk);

  ClientImpl& client_;
  Backend& backend_;
  const std::string id_;
  const SessionHandle handle_;
  const std::uint64_t fork_epoch_;  // a forked child's copy of the lane is not its own
  const bool quick_;                 // backend_.quick_calls()

  mutable std::mutex mu_;
  std::condition_variable cv_;  // waited on only through Held::wait_until, woken by notify_waiters
  int cv_waiters_ = 0;          // threads in that wait: a broadcast to nobody costs a call per step
  void notify_waiters() {       // REQUIRES: mu_
    if (cv_waiters_ > 0) cv_.notify_all();
  }
  ProcState state_ = ProcState::kNone;
  Mode held_mode_ = Mode::kShared;  // while state_ is kHeld
  Grant grant_;
  bool revoke_seen_ = false;     // the store asked for the lock back
  bool lost_ = false;            // the lock was taken away by force; the token is stale
  int release_waiters_ = 0;      // Session::release() calls waiting for the threads to finish
  bool detached_ = false;
  bool destroyed_ = false;
  bool fresh_grant_ = false;     // granted for a thread that has not used it yet (observe may drop mu_)
  int users_ = 0;                // thread locks outstanding
  int whole_shared_ = 0;
  bool whole_exclusive_ = false;
  int attr_exclusive_ = 0;
  std::vector<AttrLock> attrs_;                          // in use or idle, unordered
  std::vector<std::unique_ptr<ThreadLockState>> spare_;  // cleared states for reuse
  bool retired_ = false;         // drop_spares() ran: keep no state (they would hold references)

  enum LaneState : std::uint32_t { kClosed, kOpenShared, kOpenExclusive, kBusy, kTaken, kAbsorbed, kVacant };
  std::atomic<std::uint32_t> lane_{kClosed};
  std::uint32_t lane_open_ = kClosed;            // the kOpen* value the lane was opened with
  std::unique_ptr<ThreadLockState> lane_spare_;  // the lane's state while the lane is not kTaken
  ThreadLockState* lane_holder_ = nullptr;       // while kTaken: the state the holder owns
  GrantWords lane_words_;                        // grant_'s words, published with kOpen* / kTaken
  // What the backend keeps between a lane release and the next lane claim (Backend::Kept): owned
  // like state_ (the lane's kBusy owner, or a mu_ holder, whose Held closed the lane). Opened by
  // the first claim from kVacant (then a claim passes no call gate: the backend's detach waits for
  // drop_spares() to close it, which no claim outlives); emptied by release_if_idle() when an
  // acquire of another session ran out of capacity.
  Backend::Kept keep_;
  // Set by every thread unlock, which reads no clock (a clock read costs more than the whole fast
  // lane): the revoke thread marks the session used for idle expiry within kRevokeThreadSlice
  // (on_notification). A release marks it at once (shm::mark_used; the broker dates the marks).
  std::atomic<bool> used_{false};
  std::mutex commit_mu_;         // serialises this process's commits on the session
};

// ---- the fast lane's two ends, inline: they are the whole of a cached thread lock ----

inline std::unique_ptr<ThreadLockState> LocalSession::try_lane(std::span<const std::string_view> attrs, bool whole,
                                                               Mode mode, bool& busy) {
  std::uint32_t open = lane_.load(std::memory_order_relaxed);
  if (open != kOpenExclusive && (open != kOpenShared || mode != Mode::kShared))
    return open == kVacant ? claim_vacant(attrs, whole, mode, busy) : nullptr;  // off the cached path
  if (forked_since(fork_epoch_)) return nullptr;
  if (!lane_.compare_exchange_strong(open, kBusy, std::memory_order_acquire, std::memory_order_relaxed)) return nullptr;
  // A revoke request or a loss flagged in the segment (an eviction breaks every grant of the
  // client, a detach closes the lane) is for the mutex side to notice and act on.
  if (grant_status_of(lane_words_) != GrantStatus::kHeld) {
    lane_.store(open, std::memory_order_release);
    return nullptr;
  }
  return hand_out_lane(attrs, whole, mode);
}

inline std::unique_ptr<ThreadLockState> LocalSession::hand_out_lane(std::span<const std::string_view> attrs, bool whole,
                                                                    Mode mode) {
  std::unique_ptr<ThreadLockState> t = std::move(lane_spare_);
  t->set_portion(attrs, whole, mode);
  t->grant = grant_;
  t->via_lane = true;
  lane_holder_ = t.get();
  lane_.store(kTaken, std::memory_order_release);
  return t;
}

// lane_words_ is stable here: its writers need kClosed (maybe_open_lane) or kVacant
// (claim_vacant), and from kTaken the holder's own unlock is the next to store either.
inline bool LocalSession::return_lane(std::unique_ptr<ThreadLockState>& t) {
  // A flag raised while the lock was held: the mutex side releases at once, as a waiter wants.
  if (grant_status_of(lane_words_) != GrantStatus::kHeld) return false;
  std::uint32_t taken = kTaken;
  if (!lane_.compare_exchange_strong(taken, kBusy, std::memory_order_acquire, std::memory_order_relaxed)) return false;
  t->clear_use();
  lane_holder_ = nullptr;
  lane_spare_ = std::move(t);
  lane_.store(lane_open_, std::memory_order_release);
  used_.store(true, std::memory_order_relaxed);
  return true;
}

}  // namespace sessionbroker::detail
