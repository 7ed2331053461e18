// One lock request of one client on one session: a holder (kGranted) or a waiter (kWaiting).
// LAYOUT.md sections "Client table" (ownership) and "Lock protocol"; I8 and I12 of LAYOUT.md
// "Invariants" tie records to the session lists and to their owners.
//
// Ownership: client slot c owns records [c * locks_per_client, (c + 1) * locks_per_client).
// Only the owner moves a record out of kFree (under the session mutex of the session it names).
// While a record is linked (kWaiting/kGranted) every field is written only under that session's
// mutex; the owner also reads `state`, `wake` and `revoke` without it (atomic words), and `token`
// once `state` says kGranted. One write without the mutex: a request going to sleep behind a
// waiting record marks that record's owner awake in its `wake` and futex-wakes it (no state:
// docs/protocol.md §3 step 3).
//
// `wake`: bit 0 (kWakeAwake) set means the owner was woken to watch and has not slept since, so a
// grant need not wake it; the other bits count bumps. Set by the request waking the owner, or by
// a release's grant pass that had to wake its grantee after a short hold and wakes the new queue
// head (under the session mutex, docs/protocol.md §4 step 4): bumped by kWakeBump and marked in
// one compare-and-swap, then the futex wake, both skipped if the bit is set already. Cleared by
// the owner alone, with a fetch_and, before it reads `state` and sleeps on the value that leaves;
// granters add kWakeBump after storing `state` and futex-wake only when the value they replaced
// had the bit clear. Other bumps (breaks, repairs, detach) add 1 and always wake. So the owner
// never sleeps on a value with the bit set, and a bit set is followed by a wake or finds the owner
// awake: no grant is slept through. A crash between the mark and its wake costs the owner one
// slice (§3 step 4).
// A crash while a record is half-written leaves the session mutex owner-dead: the session repair
// rebuilds the session's lists from the records' `state` words, which are always whole.
#pragma once

#include <cstdint>
#include <type_traits>

namespace sessionbroker::shm {

struct alignas(64) LockRecord {
  std::uint32_t state;        // RecordState; atomic; the single word that says what this record is
  std::uint32_t mode;         // LockMode requested / held
  std::uint32_t session;      // session slot index
  std::uint32_t session_gen;  // generation of that slot when requested (guards slot reuse)
  std::uint32_t next;         // next record in the holder list or the queue, or kNil
  std::uint32_t wake;         // futex word: the owner sleeps on it while kWaiting; bit 0 kWakeAwake
  std::uint32_t revoke;       // 1 = the store asks the owner to release (raised under session mutex)
  std::uint32_t reserved;
  std::uint64_t token;        // fencing token of the grant (valid while kGranted)
  std::uint64_t ticket;       // FIFO position: per-session increasing, assigned on enqueue
  std::uint64_t since_ns;     // CLOCK_MONOTONIC time of enqueue or of a queued request's grant (its release reads it); 0 after a grant at once
  std::uint64_t revoke_at_ns; // CLOCK_MONOTONIC time the first revoke request was raised, or 0
};
static_assert(std::is_standard_layout_v<LockRecord> && std::is_trivially_copyable_v<LockRecord>);
static_assert(sizeof(LockRecord) == 64);

inline constexpr std::uint32_t kWakeAwake = 1;  // `wake`: the owner is awake (see above)
inline constexpr std::uint32_t kWakeBump = 2;   // a grant's bump of `wake`: leaves kWakeAwake as it was

}  // namespace sessionbroker::shm
