// The process-local side of one session: the process-level lock (acquired, cached, released on a
// revoke request) and the thread locks on attributes or the whole session.
//
// Thread safety: every member is guarded by mu_ except the immutable ones (id_, ref_, client_).
// Threads wait on cv_ with their deadline. The process lock is never released while a thread lock
// is held (users_ > 0); a revoke request or an explicit release stops new thread locks from being
// granted on the cached process lock, so waiting processes are not starved.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sessionbroker/client.hpp"
#include "store.hpp"

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
  bool covers(std::string_view name) const;
};

class LocalSession : public std::enable_shared_from_this<LocalSession> {
 public:
  LocalSession(ClientImpl& client, Backend& backend, std::string id, SessionRef ref)
      : client_(client), backend_(backend), id_(std::move(id)), ref_(ref) {}

  const std::string& id() const { return id_; }
  SessionRef ref() const { return ref_; }

  // A thread lock on `attrs` (any order, duplicates allowed) or, with `whole`, on the session.
  // In steady state (the process lock cached, names seen before, at most kSpareStates locks
  // outstanding) it allocates nothing: states and attribute entries are reused.
  Result<std::unique_ptr<ThreadLockState>> lock(std::span<const std::string_view> attrs, bool whole, Mode mode,
                                                Clock::time_point deadline);
  Status commit(ThreadLockState& t);
  // An explicit commit: like commit(), but with nothing pending it still reports kStaleToken
  // when the grant was taken away (broken, expired, evicted), so success means "still yours".
  Status confirm_and_commit(ThreadLockState& t);
  // Commits, drops the thread lock and keeps `t` for reuse.
  Status unlock(std::unique_ptr<ThreadLockState> t);
  // Destroys the session using the exclusive whole-session lock `t` holds.
  Status destroy_with(ThreadLockState& t);
  Status release(Clock::time_point deadline);
  std::uint64_t token() const;
  bool held() const;

  // Revoke thread: looks at this session's revoke flag and lost state; releases when it can.
  void on_notification();
  // Releases the cached process lock if no thread uses it. Returns true if it did.
  bool release_if_idle();
  // Detach: releases the process lock whatever threads hold; later calls fail with kDetached.
  void detach();
  // Frees the spare lock states, which hold references to this session and the client (a cycle).
  // The client calls it before it lets go of the session. REQUIRES: the caller holds a reference
  // to this session and not mu_.
  void drop_spares();

 private:
  enum class ProcState { kNone, kAcquiring, kHeld, kReleasing };
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

  AttrLock* find_attr(std::string_view name);                                    // REQUIRES: mu_
  bool locally_compatible(const ThreadLockState& t) const;                       // REQUIRES: mu_
  void take_local(const ThreadLockState& t);                                     // REQUIRES: mu_
  void drop_local(const ThreadLockState& t);                                     // REQUIRES: mu_
  // A cleared state with `attrs` filled in sorted and unique (reused when one is spare).
  std::unique_ptr<ThreadLockState> new_state(std::span<const std::string_view> attrs, bool whole, Mode mode);  // REQUIRES: mu_
  // Keeps `t` for reuse; returns it when there is no room, for the caller to destroy with mu_ free.
  std::unique_ptr<ThreadLockState> recycle(std::unique_ptr<ThreadLockState> t);  // REQUIRES: mu_
  Status usable_locked() const;                                                  // REQUIRES: mu_
  Status acquire_process_lock(std::unique_lock<std::mutex>& lk, shm::LockMode need, Clock::time_point deadline);
  void release_process_lock(std::unique_lock<std::mutex>& lk);
  bool must_give_back() const { return revoke_seen_ || lost_ || release_wanted_; }  // REQUIRES: mu_
  // May the process lock be given back now? Not while a thread uses it, nor while the grant is
  // fresh (its acquiring thread has not had its turn). REQUIRES: mu_
  bool idle() const { return users_ == 0 && !fresh_grant_; }
  // Notes a revoke request or a loss flagged in the segment for the held grant, telling the
  // callback with mu_ released. Any thread may notice first; the revoke thread is only the backstop
  // for a process whose threads are idle. REQUIRES: lk holds mu_.
  void observe_segment_flags(std::unique_lock<std::mutex>& lk);

  ClientImpl& client_;
  Backend& backend_;
  const std::string id_;
  const SessionRef ref_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  ProcState state_ = ProcState::kNone;
  shm::LockMode held_mode_ = shm::LockMode::kNone;
  Grant grant_;
  bool revoke_seen_ = false;     // the store asked for the lock back
  bool lost_ = false;            // the lock was taken away by force; the token is stale
  bool release_wanted_ = false;  // Session::release() waits for the threads to finish
  bool detached_ = false;
  bool destroyed_ = false;
  bool fresh_grant_ = false;     // granted for a thread that has not used it yet (observe may drop mu_)
  int users_ = 0;                // thread locks outstanding
  int whole_shared_ = 0;
  bool whole_exclusive_ = false;
  int attr_exclusive_ = 0;
  std::vector<AttrLock> attrs_;                          // in use or idle, unordered
  std::vector<std::unique_ptr<ThreadLockState>> spare_;  // cleared states for reuse
  std::mutex commit_mu_;         // serialises this process's commits on the session
};

}  // namespace sessionbroker::detail
