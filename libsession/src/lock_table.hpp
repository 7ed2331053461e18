// LockTable: the lock protocol on one session at a time (LAYOUT.md "Lock protocol", "Revoke
// requests and the client library", and a holder's TTL operations in "Session table"): grant,
// FIFO queue, revoke requests, release, breaks, and the expiry operations a holder's grant fences.
//
// Owns: the lock records (LockRecord) and, under each session's mutex, that session's lock state
// (holders, queue, mode, tickets, grants/waits, last_used_ns, ttl_ms). Never the session's
// existence (the registry's) nor its blob (the blob store's).
// Lock order: one session mutex (SessionGuard) at a time, never with the registry or alloc mutex
// taken inside it. The public operations take it themselves; the steps at the end are for roles
// that already hold it.
// Protocol: every state change of a record happens under its session's mutex and ends with one
// release store of LockRecord::state; the waiting owner reads that word without the mutex. Grants
// bump the record's `wake` word after the state store, so no grant is missed; the futex wake
// itself follows once the session mutex is unlocked where the caller says so (DeferredWakes).
//
// Depends on: Segment and the guards. Its one call upwards, the reclaim of a dead holder's client
// by a waiter, goes through ClientReclaimer (the registry implements it).
//
// Thread safety: no mutable process-local state; any thread of any process mapping the segment.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <vector>

#include "session_types.hpp"
#include "store_types.hpp"

namespace sessionbroker::detail {

// The asking client of an acquire, as its library knows it: its slot's generation at attach (a
// slot re-attached since is not the caller's), and a flag its detach raises to call waiters back
// (it bumps their wake words after raising it). Both are process memory, never read by others.
struct Caller {
  std::uint32_t generation;
  const std::atomic<bool>* cancelled;
};

// The status a grant's own record gives, read without a mutex: two loads of one cache line that
// only the owner, the lock table (revoke requests, breaks) and repairs write. The owner may ask at
// any time; a record it holds leaves kGranted only by its own release or by force (kBroken). The
// record's state and revoke words are the grant's GrantWords (session_types.hpp).
static_assert(kGrantHeldWord == shm::word(shm::RecordState::kGranted));
inline GrantWords grant_words_of(const shm::LockRecord& r) { return {&r.state, &r.revoke}; }
inline GrantStatus grant_status_of(const shm::LockRecord& r) { return grant_status_of(grant_words_of(r)); }

// Reclaiming a dead client is the registry's work (registry.hpp), and the registry frees that
// client's records through this table. A waiter that sees no grant for a while has its session's
// dead holders reclaimed through this interface, so the dependency runs one way: registry -> lock
// table. Returns true when a reclaim ran (see Registry::reclaim_if_dead).
class ClientReclaimer {
 public:
  virtual bool reclaim_if_dead(std::uint32_t client, std::uint32_t generation) = 0;

 protected:
  ~ClientReclaimer() = default;
};

// Futex wakes held back until the session mutex is unlocked ("Wakes after the mutex" in LAYOUT.md
// "Lock protocol"). bump() increments the word at once, under the mutex, so a waiter that has not
// gone to sleep yet sees the change and does not; only the FUTEX_WAKE system call waits for
// flush(). Woken under the mutex, a grantee was placed on the releaser's core and preempted it
// while the mutex was still held, then slept on that mutex in its first read (bench/results/
// hot-notes.md): two extra switches per handoff. Declare it before the SessionGuard, so that the
// guard unlocks first and the destructor wakes second. A process that dies between the two leaves
// the word bumped and the sleeper asleep until its wait's slice ends (docs/protocol.md §3, §5).
// Process memory; one per call, never shared between threads.
class DeferredWakes {
 public:
  DeferredWakes() = default;
  DeferredWakes(const DeferredWakes&) = delete;
  DeferredWakes& operator=(const DeferredWakes&) = delete;
  ~DeferredWakes() { flush(); }
  void bump(std::uint32_t& word);  // REQUIRES: the session mutex that orders `word`'s condition
  void wake(std::uint32_t& word);  // the futex wake alone: the caller bumped `word` (wake_grantee)
  void flush();                    // wakes what bump() held back (the mutex is let go)
  void drop() { count_ = 0; }      // forgets them: the words stay bumped, nobody is woken

 private:
  static constexpr unsigned kMax = 8;  // beyond: woken at once, as before (shared grants)
  std::uint32_t* words_[kMax];
  unsigned count_ = 0;
};

// Bumps `word` and wakes its sleepers: at once without `defer`, after the mutex with it.
void bump_and_wake(std::uint32_t& word, DeferredWakes* defer);

class LockTable {
 public:
  // A hold (from a queued grant to its release) shorter than this predicts that the next one will
  // be short too: a grant that had to wake a sleeper then wakes the new queue head as well, which
  // would then be granted during its watch (docs/protocol.md §4 step 4). Holds under 20 us were
  // most of the 64- and 8-process read-modify-write's; scenario 3's holder waits for every other
  // process to ask, longer when its grantee had slept, and there the early wake was wasted and put
  // a second woken process beside the grantee (its handoff 1.4 -> 10.6 us). Measured in
  // bench/results/hot-notes.md, "A grant to a sleeper wakes the next in line too".
  static constexpr std::uint64_t kShortHoldNs = 20'000;

  LockTable(Segment& seg, ClientReclaimer& reclaimer) : seg_(seg), reclaimer_(reclaimer) {}

  // REQUIRES: `record` belongs to `client` and is kFree. `caller`, when given, fences a slot that
  // changed hands and lets a detach call the wait back (kDetached).
  Result<RecordGrant> acquire(std::uint32_t client, std::uint32_t record, SessionRef ref, shm::LockMode mode,
                              Clock::time_point deadline, const Caller* caller = nullptr);
  // The same, but granted only at once (the queue empty and the mode compatible); otherwise kBusy,
  // and the try leaves no trace: nothing queued, no revoke request raised, `record` still kFree.
  // With `fast_only`, an exclusive try that the fast path does not grant is kBusy without the
  // session mutex (a lane claim: its caller then queues the mutex way, one mutex section in all).
  Result<RecordGrant> try_acquire(std::uint32_t client, std::uint32_t record, SessionRef ref, shm::LockMode mode,
                                  const Caller* caller = nullptr, bool fast_only = false);
  // Gives the lock back. kStaleToken if it was broken meanwhile (the record is freed either way).
  Status release(SessionRef ref, const RecordGrant& g);
  // The fast path alone (fast_owner.hpp, docs/protocol.md §2a), no mutex held, for a caller that
  // builds its own answer (a lane claim: ShmBackend::try_acquire_kept / release_kept). claim_fast:
  // an exclusive request on an idle session with `record` (REQUIRES: kFree, the caller's); kGranted
  // with the grant's token in `token`; kNotIdle when it did not apply (`record` is kFree, nothing of
  // the session changed); kGone when the grant was made but its client is gone (evicted, retired,
  // slot reclaimed): given back already, `why` says why. release_fast: gives back a grant that
  // owns the session's word; false, with nothing changed, when it does not (release() decides).
  enum class FastClaim { kGranted, kNotIdle, kGone };
  FastClaim claim_fast(std::uint32_t client, std::uint32_t record, SessionRef ref, const Caller* caller,
                       std::uint64_t& token, Status& why);
  bool release_fast(SessionRef ref, const RecordGrant& g);
  [[gnu::cold]] static Status not_idle();  // the kBusy of a fast-only try (a lane claim, a cheap try) turned down
  [[gnu::cold]] static Status locked_elsewhere();  // the kBusy of a try that found the session in use
  // Takes a lock away by force (revoke deadline, break-lock): the token goes stale at once.
  bool break_lock(std::uint32_t record, std::uint64_t token);
  // grant_status_of() the grant's own record; kLost when `g` names no record.
  GrantStatus grant_status(const RecordGrant& g) const;
  // Marks the session used (kUsedNow, no clock: the broker dates it) for a revoke thread that saw
  // thread unlocks; a no-op once `ref`'s generation is gone.
  void touch(SessionRef ref);
  // Checks the holders of `slot` and reclaims dead ones (used by waiters while the broker is down).
  void reclaim_dead_holders(std::uint32_t slot);

  // A holder's expiry operations, fenced by its grant: kStaleToken (nothing changed) unless `g`
  // still holds the session. set_ttl writes ttl_ms (0: the segment's default) and restarts the
  // idle clock; touch restarts it; ttl_remaining gives the ms left before the broker may expire the
  // session once it is free (0 when already past; nullopt when its TTL is 0, "never").
  Status set_ttl(SessionRef ref, const RecordGrant& g, std::uint64_t ttl_ms);
  Status touch(SessionRef ref, const RecordGrant& g);
  Result<std::optional<std::uint64_t>> ttl_remaining(SessionRef ref, const RecordGrant& g);
  // The pids of the processes holding `ref`'s lock now, read under its session mutex; kNotFound
  // once it was destroyed or expired. A holder may release right after (for messages only).
  Result<std::vector<std::int32_t>> holder_pids(SessionRef ref);

  // ---- steps for the roles above (registry, blob store, admin, repair), all REQUIRES: the
  // session mutex of `s` ----
  // Whether `g` holds the live session `ref` (the fence of every holder's operation).
  static bool holds(const Segment& seg, const shm::SessionSlot& s, SessionRef ref, const RecordGrant& g);
  // The same without the session mutex, for the owner of `g` only (docs/protocol.md §7, "reads
  // from the copy"): its record says kGranted with g's token for `ref`. True means `g` held the
  // session when the record's state was loaded (acquire); loads after it see the session as of then
  // or later. No mutex REQUIRED.
  static bool holds_unlocked(const Segment& seg, SessionRef ref, const RecordGrant& g);
  // Takes `rec` out of the session, grants whoever that unblocks, and leaves the record in
  // `final_state` (kFree when its owner gives it back, kBroken when taken by force).
  // `defer`, when given, holds the futex wakes back until the caller unlocks the mutex.
  // `granted_ns`: when `rec`, given back by its owner, was granted (0: not known), for the pass.
  void remove_record(shm::SessionSlot& s, std::uint32_t rec, shm::RecordState final_state,
                     DeferredWakes* defer = nullptr, std::uint64_t granted_ns = 0);
  // Every holder and waiter of `s` but `own` ends kBroken (owners woken and notified; `own`, if
  // linked, ends kFree); the lists are emptied without a grant pass. Returns how many broke.
  int break_all_locked(shm::SessionSlot& s, const RecordGrant* own);
  // Grants the head of the queue while it is compatible (I4), then asks the holders to release
  // if anyone is still queued. `last_granted_ns`: when the hold that just ended began (0: not
  // known); after a short one, a grant to a sleeper wakes the new head too (§4 step 4).
  void grant_waiters(shm::SessionSlot& s, DeferredWakes* defer = nullptr, std::uint64_t last_granted_ns = 0);
  // Raises every holder's revoke flag and wakes its owner's revoke thread, except for the first
  // `just_granted` holders of the list: threads that grant_waiters is about to wake read the flag.
  void request_revoke(shm::SessionSlot& s, std::uint32_t just_granted = 0, DeferredWakes* defer = nullptr);

 private:
  // All REQUIRES: session mutex of `s`.
  void prepare_record(std::uint32_t rec, SessionRef ref, shm::LockMode mode);  // a request's fields
  bool compatible(const shm::SessionSlot& s, shm::LockMode mode) const;
  void grant(shm::SessionSlot& s, std::uint32_t rec, std::uint64_t now_ns);  // now_ns 0: granted at once, untimed
  void enqueue(shm::SessionSlot& s, std::uint32_t rec);
  bool unlink(shm::SessionSlot& s, std::uint32_t rec);
  void clear_revoke_flags(shm::SessionSlot& s);
  // kDetached/kNoSegment after taking `record` back out of the session.
  Status withdraw_if_gone(shm::SessionSlot& s, std::uint32_t client, std::uint32_t record, const Caller* caller);
  // Takes a waiter's record out of the queue (or a grant that raced it back out of the holder
  // list) and frees it; `why` is what the waiter is told.
  Status withdraw(shm::SessionSlot& s, std::uint32_t record, Status why);
  // claim_fast as acquire and try_acquire use it: kNotIdle also for a shared request (then
  // `record` is kFree and the caller takes the mutex path). The callers build their answer from
  // it in place: an optional<Result<RecordGrant>> here had GCC write the grant's record (4 bytes,
  // then padding) to the stack and read it back as 8, a load that store forwarding cannot serve
  // (bench/results/hot-notes.md, "Store forwarding").
  struct FastTry {
    FastClaim claim = FastClaim::kNotIdle;
    std::uint64_t token = 0;  // kGranted
    Status why;               // kGone
  };
  FastTry acquire_fast(std::uint32_t client, std::uint32_t record, SessionRef ref, shm::LockMode mode,
                       const Caller* caller);
  // The request was absorbed before its owner saw its grant settled: decides under the mutex.
  std::optional<Result<RecordGrant>> confirm_fast(std::uint32_t client, std::uint32_t record, SessionRef ref,
                                                  const Caller* caller);
  // Whether a grant just made stands: the client live and still the caller's registration, the
  // segment not retired; read without a mutex after the grant's seq_cst state store. When it does
  // not, gone_why says why (never ok): evicted, retired, or the slot reclaimed.
  bool stands(std::uint32_t client, const Caller* caller) const;
  [[gnu::cold]] Status gone_why(std::uint32_t client) const;
  // No mutex held: the waiting owner's loop. `next_in_line`: the record it wakes before it first
  // sleeps (kNil for none).
  Result<RecordGrant> wait_for_grant(std::uint32_t record, SessionRef ref, Clock::time_point deadline, const Caller* caller,
                                     std::uint32_t next_in_line);
  void wake_next_in_line(std::uint32_t next_in_line);
  // Asks the cache for the segment lines a grantee touches next (see the definition).
  void prefetch_for_grantee(std::uint32_t record, std::uint32_t slot) const;

  Segment& seg_;
  ClientReclaimer& reclaimer_;
};

}  // namespace sessionbroker::detail
