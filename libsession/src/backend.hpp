// The seam between the client library (ClientImpl, LocalSession: lock caching, thread locks, the
// fast lane, revoke handling) and a store that holds sessions and grants process-level locks. Two
// backends implement it: ShmBackend (a shared-memory segment on this host, shm_backend.hpp) and
// EtcdBackend (an etcd cluster, etcd/etcd_backend.hpp), which the application reaches through
// AgentBackend (etcd/agent_backend.hpp: gRPC runs in an agent process, never in one that forks).
// open_backend() picks one by the store's address. Nothing here names a segment structure:
// handles are opaque, modes are the public Mode.
//
// What a backend promises (the claims, in the library's terms):
//   - A grant is exclusive or shared as asked, FIFO among waiters of one session, and carries a
//     token that is strictly increasing across the whole store and never reused.
//   - Reads, commits, expiry changes and destroys under a grant are fenced by its token: once the
//     grant is lost they change nothing and return kStaleToken (no data).
//   - A grant's state is readable without a call: grant_words() gives two words the lane loads
//     on every cached thread lock. They live wherever the backend keeps them (the lock record in
//     the segment; process memory updated by a watch for etcd) and stay mapped while the backend
//     lives. state == kGrantHeldWord while the grant holds, anything else once it is lost (never
//     back); revoke != 0 once another process asked for the lock.
//   - A revoke request or a loss of one of this process's grants bumps the notification epoch
//     (notification_epoch/wait_notification): the revoke thread waits on it and then looks at
//     every session's grant.
//
// Thread safety: every method may be called concurrently from any thread of the attached process.
// Process safety: in a child forked after attach every call fails with kDetached, and close(),
// detach() and the destructor leave the parent's registration alone.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "session_types.hpp"
#include "sessionbroker/client.hpp"
#include "sessionbroker/error.hpp"

namespace sessionbroker::detail {

// A thread lock's private copy of what its last fenced read (or commit) saw of the session's
// committed state, owned by the lock's ThreadLockState and opaque to the library: a backend may
// keep one there (read(), read_all() and commit() get the lock's slot; an exclusive lock's only: a
// shared lock never commits, and its reads get nullptr) and answer reads from it, or build the next
// commit on it, instead of reading the committed state again. It must make sure the grant holds
// and nothing was committed since (the shared-memory backend compares the session's blob and
// commit count with the copy's, docs/protocol.md §7 "reads from the copy") and take its ordinary
// path when something was. The library hands a new lock the state (and copy) of the session's last
// lock through the fast lane. Process memory; one thread at a time, as its lock.
class ReadCopy {
 public:
  virtual ~ReadCopy() = default;
};
using ReadCopySlot = std::unique_ptr<ReadCopy>;

class Backend {
 public:
  virtual ~Backend() = default;

  // Closes the backend to this process's calls: every later call fails with kDetached, queued
  // requests are called back (they return kDetached), and it returns once no call is in flight.
  // Idempotent; a no-op in a forked child (the registration is the parent's).
  virtual void close() = 0;
  // close(), then frees the registration and everything it still holds. Idempotent; a no-op in a
  // forked child, which must never touch its parent's registration.
  virtual Status detach() = 0;
  // True once an administrator evicted this process (sessionctl evict-client) or the store
  // dropped it (etcd: its lease expired): every later call fails with kDetached; detach() still
  // frees what is left.
  virtual bool evicted() const = 0;
  virtual std::uint32_t max_value_bytes() const = 0;

  virtual Result<SessionHandle> create_session(std::string_view id, std::uint64_t ttl_ms) = 0;
  virtual Result<SessionHandle> open_session(std::string_view id) = 0;
  // Race-free create-if-absent; `created` says whether this call created it.
  virtual Result<SessionHandle> open_or_create_session(std::string_view id, std::uint64_t ttl_ms, bool& created) = 0;
  // Destroys the session, breaking any other holder's lock. With `own`, fenced: kStaleToken
  // (nothing destroyed) unless `own` still holds it; `own` is released either way.
  virtual Status destroy_session(SessionHandle s, const Grant* own) = 0;
  virtual Result<std::vector<std::string>> list_sessions() = 0;
  // The pids of the processes holding the session's lock now (for messages: who holds it).
  virtual Result<std::vector<std::int32_t>> holder_pids(SessionHandle s) = 0;

  // Process-level lock. Blocks (queued FIFO) until granted or the deadline.
  virtual Result<Grant> acquire(SessionHandle s, Mode mode, Clock::time_point deadline) = 0;
  // Granted at once or kBusy; a busy try queues nothing and asks no holder for anything.
  virtual Result<Grant> try_acquire(SessionHandle s, Mode mode) = 0;
  // The try a request that will wait makes first (its acquire() follows a busy answer): like
  // try_acquire, but it may answer kBusy where try_acquire would grant, as try_acquire_kept may
  // below, so that a session in use costs it nothing (on shared memory an exclusive try takes the
  // fast path or nothing, leaving one S section, the queueing's, to the acquire that follows).
  virtual Result<Grant> try_acquire_cheap(SessionHandle s, Mode mode) { return try_acquire(s, mode); }
  // Gives the lock back; kStaleToken if it was lost meanwhile (released either way).
  virtual Status release(SessionHandle s, const Grant& g) = 0;
  // The fast lane's pair (LocalSession's kVacant state): try_acquire and release as above, with a
  // place where the backend may keep what a grant used between a release and the same session's
  // next try (shared memory keeps the lock record, so a full cycle on an idle session takes none
  // from the client's pool and gives none back). `keep` belongs to one session of the caller and
  // is used by one thread at a time. drop_kept() empties it and returns whether it held anything
  // (the caller calls it when an acquire ran out of capacity). try_acquire_kept may answer kBusy
  // where try_acquire would grant: the caller then acquires the long way, and a busy answer must
  // be cheap (on shared memory an exclusive claim takes the fast path or nothing: a session in use
  // costs it no mutex section, leaving one, the queueing's, to the acquire that follows).
  // An open Kept (open_kept() returned true) also stands for the call gate: try_acquire_kept with
  // it need not count itself in flight, because the caller promises that no call with it is in
  // flight once it has called close_kept(), and calls close_kept() on every open Kept before
  // detach(), which waits for that. close_kept() empties it too; the caller calls it before it
  // lets go of the session. open_kept() is false once detach() began (and on a backend with no
  // gate to spare): the Kept then works, counted per call. The defaults keep nothing.
  struct Kept {
    std::uint64_t id = ~std::uint64_t{0};
    bool open = false;
    bool empty() const { return id == ~std::uint64_t{0}; }
  };
  virtual Result<Grant> try_acquire_kept(SessionHandle s, Mode mode, Kept& keep) {
    (void)keep;
    return try_acquire(s, mode);
  }
  virtual Status release_kept(SessionHandle s, const Grant& g, Kept& keep) {
    (void)keep;
    return release(s, g);
  }
  virtual bool drop_kept(Kept& keep) {
    keep.id = Kept{}.id;
    return false;
  }
  virtual bool open_kept(Kept& keep) { return keep.open; }
  virtual void close_kept(Kept& keep) { keep = {}; }
  // True when try_acquire and release are memory operations (a mutex section in shared memory,
  // never a network hop, never a wait for a grant): the caller may make them while it holds its own
  // mutex, which spares the uncontended lock cycle a let-go and a re-take of that mutex each way.
  virtual bool quick_calls() const = 0;
  virtual GrantStatus grant_status(const Grant& g) = 0;
  // The words of a grant this process holds (see the top of this file); valid while the backend
  // lives. Both null if `g` names none.
  virtual GrantWords grant_words(const Grant& g) = 0;
  // The session was used just now (idle expiry), without a grant.
  virtual void touch(SessionHandle s) = 0;
  // Expiry of a held session, fenced by the grant's token: set_ttl writes the idle TTL (0: the
  // store's default) and restarts the idle clock; touch restarts it; ttl_remaining gives the ms
  // left (nullopt: never expires).
  virtual Status set_ttl(SessionHandle s, const Grant& g, std::uint64_t ttl_ms) = 0;
  virtual Status touch(SessionHandle s, const Grant& g) = 0;
  virtual Result<std::optional<std::uint64_t>> ttl_remaining(SessionHandle s, const Grant& g) = 0;

  // Primary state, fenced by the grant's token. A commit replaces the named attributes at once:
  // other processes see all of it or none. `copy` is the calling thread lock's (ReadCopy above),
  // nullptr for a shared lock's reads.
  virtual Result<std::optional<std::string>> read(SessionHandle s, const Grant& g, std::string_view name,
                                                  ReadCopySlot* copy) = 0;
  virtual Result<AttrMap> read_all(SessionHandle s, const Grant& g, ReadCopySlot* copy) = 0;
  virtual Status commit(SessionHandle s, const Grant& g, const ChangeSet& changes, ReadCopySlot* copy) = 0;

  // The notification primitive: the epoch moves on every revoke request or loss of a grant of this
  // process. wait_notification returns when it moved past `seen`, at the deadline, or when
  // interrupted (spurious returns are allowed).
  virtual std::uint32_t notification_epoch() = 0;
  virtual void wait_notification(std::uint32_t seen, Clock::time_point deadline) = 0;
  virtual void interrupt_notification_wait() = 0;
};

// The backend for a store address: "etcd://HOST:PORT[,HOST:PORT...]/PREFIX" is an etcd cluster,
// anything else the name of a shared-memory segment on this host (backends.cpp).
Result<std::unique_ptr<Backend>> open_backend(const std::string& store);

}  // namespace sessionbroker::detail
