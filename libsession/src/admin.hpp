// Admin: what operators and the broker's housekeeping do to the locks of others (LAYOUT.md
// "Eviction" and "Revoke requests"): break a session's locks, find and evict a client, break the
// grants whose holders ignore a revoke request past the deadline, and consistent per-session
// snapshots for the tools (dump, check, watch). Any process may call them.
//
// Owns: no data; every change goes through the lock table's remove_record and break_lock, so
// waiters are granted and tokens fenced exactly as on a release.
// Lock order: evict_client takes the registry mutex, then each record's session mutex in turn;
// the others take one session mutex at a time.
// Depends on: the registry (as the lock table's ClientReclaimer) and the lock table.
//
// Thread safety: no mutable process-local state; any thread of any process mapping the segment.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

#include "lock_table.hpp"
#include "registry.hpp"
#include "store_types.hpp"

namespace sessionbroker::detail {

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

// A grant taken away by force: whose it was and its token.
struct BrokenGrant {
  std::uint32_t client;
  std::uint64_t token;
};

class Admin {
 public:
  explicit Admin(Segment& seg) : seg_(seg), registry_(seg), locks_(seg, registry_) {}
  Admin(const Admin&) = delete;  // locks_ refers to registry_
  Admin& operator=(const Admin&) = delete;

  // Breaks every lock held on the session (fencing: the holders' tokens go stale at once, their
  // callbacks hear kLost); the queue head is then granted. Returns the tokens broken.
  Result<std::vector<std::uint64_t>> break_session_locks(SessionRef ref);
  // The live client slot of process `pid`, if it is attached.
  std::optional<std::uint32_t> find_client(pid_t pid) const;
  // Evicts a live client: kLive -> kEvicted, then breaks its granted locks and cancels its queued
  // requests. The owner's next call fails with kDetached and its callback hears kLost; the slot is
  // freed when the owner detaches or dies. Returns how many records were broken or cancelled.
  Result<int> evict_client(std::uint32_t client, std::uint32_t generation);
  // Broker: breaks every grant whose holder has left a revoke request unanswered for `deadline_ns`
  // or longer at `now_ns` (CLOCK_MONOTONIC), as LockTable::break_lock does. deadline_ns 0: none.
  // Returns the grants it broke, for the broker's log.
  std::vector<BrokenGrant> break_overdue_revokes(std::uint64_t now_ns, std::uint64_t deadline_ns);
  // One session's holders, queue and attributes at one instant; nullopt for a free slot.
  std::optional<SessionSnapshot> snapshot(std::uint32_t slot);

 private:
  Segment& seg_;
  Registry registry_;
  LockTable locks_;
};

}  // namespace sessionbroker::detail
