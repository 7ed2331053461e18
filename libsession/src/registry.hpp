// Registry: the client table and the session table with its index (LAYOUT.md "Client table",
// "Session table", "Reclaim", "Retirement" and "Broker duties"): attach,
// detach, reclaim of dead clients, create/open/destroy/list of sessions, idle expiry, retirement.
//
// Owns: the client slots (but their records: the lock table's; their pending blobs: the blob
// store's), the session slots' existence (state, generation, id, free list), the index, and the
// header's counts and registry_epoch.
// Lock order: the registry mutex first (registry_guard), then one session mutex, then the alloc
// mutex; registry.cpp says which operation takes which.
// Depends on: the lock table (a client's records are freed, a destroyed session's locks broken,
// an idle holder asked back through it) and the blob store's allocator (a pending or committed
// blob is freed). It is the lock table's ClientReclaimer: a waiter has a dead holder's client
// reclaimed here.
//
// Thread safety: no mutable process-local state; any thread of any process mapping the segment.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

#include "lock_table.hpp"
#include "store_types.hpp"

namespace sessionbroker::detail {

// An attached client as the registry saw it under its mutex (a consistent copy of the slot).
struct ClientInfo {
  std::uint32_t slot;
  std::uint32_t generation;
  std::int32_t pid;
  std::uint64_t start_time;
};

class Registry final : public ClientReclaimer {
 public:
  explicit Registry(Segment& seg) : seg_(seg) {}

  // ---- clients ----
  Result<std::uint32_t> attach_client(pid_t pid);
  // Releases whatever the client still has and frees its slot, if the slot is still at
  // `generation` (false if it was reclaimed meanwhile). REQUIRES: caller is the owner, and no call
  // of the owner's is in flight (ShmBackend's gate drains them first).
  bool detach_client(std::uint32_t client, std::uint32_t generation);
  // If the owner of `client` (at `generation`) is dead, reclaims everything it held. Returns true
  // when a reclaim ran. Safe to call from any process, concurrently, any number of times.
  bool reclaim_if_dead(std::uint32_t client, std::uint32_t generation) override;
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
  bool retired() const { return detail::retired(seg_); }

  // ---- sessions ----
  Result<SessionRef> create_session(std::string_view id, std::uint64_t ttl_ms);
  Result<SessionRef> open_session(std::string_view id);
  // Opens the session, or creates it (with `ttl_ms`) if absent, in one registry critical section,
  // so two processes racing on one id both succeed and exactly one creates. `created` says which.
  Result<SessionRef> open_or_create_session(std::string_view id, std::uint64_t ttl_ms, bool& created);
  // Destroys the session, breaking any lock other than `own` (which may be null). With `own`, the
  // destroy is fenced: kStaleToken (nothing destroyed) unless `own` still holds the session.
  Status destroy_session(SessionRef ref, const RecordGrant* own);
  std::vector<std::string> list_sessions();
  // Broker: destroys `slot` if it is live, unheld, unqueued and idle past its TTL; if it is held
  // but idle, asks the holders to release. Returns the id of the session it destroyed. First it
  // dates a use not yet dated (kUsedNow) to `now_mono_ns`: such a session is not idle this pass.
  std::optional<std::string> expire_if_idle(std::uint32_t slot, std::uint64_t now_mono_ns);

  // ---- steps for the registry repair (repair.hpp), REQUIRES: registry mutex ----
  // Frees everything `client` holds and then its slot; idempotent (a kDead slot is finished).
  void reclaim_client_locked(std::uint32_t client);
  // Rebuilds the index and the session free list from the session table.
  void index_rebuild();

 private:
  LockTable locks() { return LockTable(seg_, *this); }
  std::uint32_t* index_find(std::string_view id, bool for_insert);   // REQUIRES: registry mutex
  Result<SessionRef> create_locked(std::string_view id, std::uint64_t ttl_ms);  // REQUIRES: registry mutex, id absent
  void destroy_locked(std::uint32_t slot, const RecordGrant* own);         // REQUIRES: registry + session

  Segment& seg_;
};

}  // namespace sessionbroker::detail
