// Store: the lock protocol and the attribute store, as operations on a mapped Segment.
// Used by libsession's shared-memory backend (client side) and by the broker (reclaim, expiry).
// The protocol itself is specified in shm_layout/LAYOUT.md; this class is its one implementation.
//
// Lock order (never take a mutex to the left while holding one to the right):
//   registry mutex  ->  one session mutex  ->  alloc mutex
// At most one session mutex is held at a time.
//
// Thread safety: a Store has no mutable process-local state; every method may be called from any
// thread of any process mapping the segment. Methods that say "REQUIRES: session mutex" etc. are
// internal steps and are called only with that mutex held by the calling thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "segment.hpp"
#include "session_types.hpp"
#include "sessionbroker/error.hpp"
#include "sessionbroker/shm/futex.hpp"

namespace sessionbroker::detail {

struct SessionRef {
  std::uint32_t slot = shm::kNil;
  std::uint32_t gen = 0;
};

struct RecordGrant {
  std::uint32_t record = shm::kNil;
  std::uint64_t token = 0;
};

// An attached client as the registry saw it under its mutex (a consistent copy of the slot).
struct ClientInfo {
  std::uint32_t slot;
  std::uint32_t generation;
  std::int32_t pid;
  std::uint64_t start_time;
};

// The asking client of an acquire, as its library knows it: its slot's generation at attach (a
// slot re-attached since is not the caller's), and a flag its detach raises to call waiters back
// (it bumps their wake words after raising it). Both are process memory, never read by others.
struct Caller {
  std::uint32_t generation;
  const std::atomic<bool>* cancelled;
};

// The status a grant's own record gives, read without a mutex: two loads of one cache line that
// only the owner, the store (revoke requests, breaks) and repairs write. The owner may ask at any
// time; a record it holds leaves kGranted only by its own release or by force (kBroken). The
// record's state and revoke words are the grant's GrantWords (session_types.hpp).
static_assert(kGrantHeldWord == static_cast<std::uint32_t>(shm::RecordState::kGranted));
inline GrantWords grant_words_of(const shm::LockRecord& r) { return {&r.state, &r.revoke}; }
inline GrantStatus grant_status_of(const shm::LockRecord& r) { return grant_status_of(grant_words_of(r)); }

// What a client of a retired segment hears (LAYOUT.md "Retirement").
inline Status retired_status() {
  return Status(ErrorCode::kNoSegment,
                "the segment was removed (its broker stopped with --remove-on-exit): attach again to the new one");
}

struct AttrInfo {
  std::string name;
  std::uint32_t size;
};

// A consistent copy of one session, for tools (taken under its session mutex).
struct SessionSnapshot {
  std::uint32_t slot;
  std::string id;
  shm::LockMode mode;
  struct Holder { std::uint32_t client; std::int32_t pid; shm::LockMode mode; std::uint64_t token; bool revoke; };
  struct Waiter { std::uint32_t client; std::int32_t pid; shm::LockMode mode; std::uint64_t ticket; };
  std::vector<Holder> holders;
  std::vector<Waiter> queue;  // FIFO order
  std::vector<AttrInfo> attrs;
  std::uint64_t version, grants, waits, ttl_ms, idle_ms;
};

class Store {
 public:
  explicit Store(Segment& seg) : seg_(seg) {}
  Segment& segment() const { return seg_; }

  // ---- clients (registry.cpp) ----
  Result<std::uint32_t> attach_client(pid_t pid);
  // Releases whatever the client still has and frees its slot, if the slot is still at
  // `generation` (false if it was reclaimed meanwhile). REQUIRES: caller is the owner, and no call
  // of the owner's is in flight (ShmBackend's gate drains them first).
  bool detach_client(std::uint32_t client, std::uint32_t generation);
  // If the owner of `client` (at `generation`) is dead, reclaims everything it held. Returns true
  // when a reclaim ran. Safe to call from any process, concurrently, any number of times.
  bool reclaim_if_dead(std::uint32_t client, std::uint32_t generation);
  // The process the caller watched (broker, pidfd) exited: reclaims its slot if the slot still
  // names that process (generation, pid and start time, re-checked under the registry mutex).
  bool reclaim_exited(const ClientInfo& watched);
  // The kLive and kEvicted clients, read under the registry mutex.
  std::vector<ClientInfo> attached_clients();
  // Checks every live client and reclaims the dead ones; returns how many were reclaimed.
  int reclaim_all_dead();
  // A broker about to unlink the segment retires it: no grant is made in it from now on, every
  // lock and queued request in it is broken (LAYOUT.md "Retirement"). Returns the locks broken.
  int retire();
  bool retired() const { return shm::load(seg_.header().retired) != 0; }

  // ---- sessions (registry.cpp) ----
  Result<SessionRef> create_session(std::string_view id, std::uint64_t ttl_ms);
  Result<SessionRef> open_session(std::string_view id);
  // Opens the session, or creates it (with `ttl_ms`) if absent, in one registry critical section,
  // so two processes racing on one id both succeed and exactly one creates. `created` says which.
  Result<SessionRef> open_or_create_session(std::string_view id, std::uint64_t ttl_ms, bool& created);
  // Destroys the session, breaking any lock other than `own` (which may be null). With `own`, the
  // destroy is fenced: kStaleToken (nothing destroyed) unless `own` still holds the session.
  Status destroy_session(SessionRef ref, const RecordGrant* own);
  std::vector<std::string> list_sessions();
  // The pids of the processes holding `ref`'s lock now (snapshot.cpp), read under its session
  // mutex; kNotFound once it was destroyed or expired. A holder may release right after.
  Result<std::vector<std::int32_t>> holder_pids(SessionRef ref);
  // Broker: destroys `slot` if it is live, unheld, unqueued and idle past its TTL; if it is held
  // but idle, asks the holders to release. Returns the id of the session it destroyed.
  std::optional<std::string> expire_if_idle(std::uint32_t slot, std::uint64_t now_mono_ns);
  // A holder's expiry operations, fenced by its grant: kStaleToken (nothing changed) unless `g`
  // still holds the session. set_ttl writes ttl_ms (0: the segment's default) and restarts the
  // idle clock; touch restarts it; ttl_remaining gives the ms left before the broker may expire the
  // session once it is free (0 when already past; nullopt when its TTL is 0, "never").
  Status set_ttl(SessionRef ref, const RecordGrant& g, std::uint64_t ttl_ms);
  Status touch(SessionRef ref, const RecordGrant& g);
  Result<std::optional<std::uint64_t>> ttl_remaining(SessionRef ref, const RecordGrant& g);

  // ---- locks (lock_table.cpp) ----
  // REQUIRES: `record` belongs to `client` and is kFree. `caller`, when given, fences a slot that
  // changed hands and lets a detach call the wait back (kDetached).
  Result<RecordGrant> acquire(std::uint32_t client, std::uint32_t record, SessionRef ref, shm::LockMode mode,
                        Clock::time_point deadline, const Caller* caller = nullptr);
  // The same, but granted only at once (the queue empty and the mode compatible); otherwise kBusy,
  // and the try leaves no trace: nothing queued, no revoke request raised, `record` still kFree.
  Result<RecordGrant> try_acquire(std::uint32_t client, std::uint32_t record, SessionRef ref, shm::LockMode mode,
                            const Caller* caller = nullptr);
  // Gives the lock back. kStaleToken if it was broken meanwhile (the record is freed either way).
  Status release(SessionRef ref, const RecordGrant& g);
  // Takes a lock away by force (revoke deadline, break-lock): the token goes stale at once.
  bool break_lock(std::uint32_t record, std::uint64_t token);
  // grant_status_of() the grant's own record; kLost when `g` names no record.
  GrantStatus grant_status(const RecordGrant& g) const;
  void touch(SessionRef ref);
  // Checks the holders of `slot` and reclaims dead ones (used by waiters while the broker is down).
  void reclaim_dead_holders(std::uint32_t slot);

  // ---- data (blob_store.cpp) ----
  Result<std::optional<std::string>> read(SessionRef ref, const RecordGrant& g, std::string_view name);
  Result<AttrMap> read_all(SessionRef ref, const RecordGrant& g);
  // `generation`: the committer's slot generation (its pending blob is its own only while it holds).
  Status commit(std::uint32_t client, std::uint32_t generation, SessionRef ref, const RecordGrant& g, const ChangeSet& changes);
  std::uint32_t free_blocks() const { return shm::load(seg_.header().free_count); }

  // ---- tools ----
  std::optional<SessionSnapshot> snapshot(std::uint32_t slot);

  // ---- admin actions (admin.cpp), for sessionctl; any process may call them ----
  // Breaks every lock held on the session (fencing: the holders' tokens go stale at once, their
  // callbacks hear kLost); the queue head is then granted. Returns the tokens broken.
  Result<std::vector<std::uint64_t>> break_session_locks(SessionRef ref);
  // The live client slot of process `pid`, if it is attached.
  std::optional<std::uint32_t> find_client(pid_t pid) const;
  // Evicts a live client: kLive -> kEvicted, then breaks its granted locks and cancels its queued
  // requests. The owner's next call fails with kDetached and its callback hears kLost; the slot is
  // freed when the owner detaches or dies. Returns how many records were broken or cancelled.
  Result<int> evict_client(std::uint32_t client, std::uint32_t generation);

  // ---- repairs (repair.cpp): REQUIRES the named mutex, owner died ----
  void repair_registry();
  void repair_session(std::uint32_t slot);
  void repair_alloc();

 private:
  friend class SessionGuard;
  // registry.cpp
  void reclaim_client_locked(std::uint32_t client);                  // REQUIRES: registry mutex
  std::uint32_t* index_find(std::string_view id, bool for_insert);   // REQUIRES: registry mutex
  void index_rebuild();                                               // REQUIRES: registry mutex
  Result<SessionRef> create_locked(std::string_view id, std::uint64_t ttl_ms);  // REQUIRES: registry mutex, id absent
  void destroy_locked(std::uint32_t slot, const RecordGrant* own);         // REQUIRES: registry + session
  // Every holder and waiter of `s` but `own` ends kBroken (owners woken and notified; `own`, if
  // linked, ends kFree); the lists are emptied without a grant pass. Returns how many broke.
  int break_all_locked(shm::SessionSlot& s, const RecordGrant* own);        // REQUIRES: session mutex
  // lock_table.cpp, all REQUIRES: session mutex of `s`
  void prepare_record(std::uint32_t rec, SessionRef ref, shm::LockMode mode);  // a request's fields
  bool compatible(const shm::SessionSlot& s, shm::LockMode mode) const;
  void grant(shm::SessionSlot& s, std::uint32_t rec, std::uint64_t now_ns);  // now_ns 0: granted at once, untimed
  void grant_waiters(shm::SessionSlot& s);
  void enqueue(shm::SessionSlot& s, std::uint32_t rec);
  bool unlink(shm::SessionSlot& s, std::uint32_t rec);
  // Raises every holder's revoke flag and wakes its owner's revoke thread, except for the first
  // `just_granted` holders of the list: threads that grant_waiters is about to wake read the flag.
  void request_revoke(shm::SessionSlot& s, std::uint32_t just_granted = 0);
  void clear_revoke_flags(shm::SessionSlot& s);
  void remove_record(shm::SessionSlot& s, std::uint32_t rec, shm::RecordState final_state);
  bool holds(const shm::SessionSlot& s, SessionRef ref, const RecordGrant& g) const;
  Result<RecordGrant> wait_for_grant(std::uint32_t record, SessionRef ref, Clock::time_point deadline, const Caller* caller);
  // REQUIRES: session mutex. kDetached/kNoSegment after taking `record` back out of the session.
  Status withdraw_if_gone(shm::SessionSlot& s, std::uint32_t client, std::uint32_t record, const Caller* caller);
  // REQUIRES: session mutex. Takes a waiter's record out of the queue (or a grant that raced it
  // back out of the holder list) and frees it; `why` is what the waiter is told.
  Status withdraw(shm::SessionSlot& s, std::uint32_t record, Status why);
  // blob_store.cpp, REQUIRES: alloc mutex
  std::uint32_t alloc_chain(std::uint32_t blocks);
  void free_chain(std::uint32_t head);

  Segment& seg_;
};

// RAII for the per-session mutex with its repair routine.
class SessionGuard {
 public:
  SessionGuard(Store& store, std::uint32_t slot)
      : guard_(store.seg_.session(slot).mutex, [&] { store.repair_session(slot); }) {}
  bool owner_died() const { return guard_.owner_died(); }
  void unlock() { guard_.unlock(); }

 private:
  shm::RobustGuard guard_;
};

inline shm::RobustGuard registry_guard(Store& store) {
  return shm::RobustGuard(store.segment().header().registry_mutex, [&] { store.repair_registry(); });
}
inline shm::RobustGuard alloc_guard(Store& store) {
  return shm::RobustGuard(store.segment().header().alloc_mutex, [&] { store.repair_alloc(); });
}

}  // namespace sessionbroker::detail
