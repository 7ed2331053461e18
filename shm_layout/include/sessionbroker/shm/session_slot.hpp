// One session: its lock state (holders, FIFO queue) and its committed primary state (a blob).
// LAYOUT.md sections "Session table" and "Lock protocol"; whenever the session mutex is free, I1,
// I4, I8 and I9 of LAYOUT.md "Invariants" hold.
//
// The session mutex guards every field below it, with these exceptions:
//   * `state`, `generation`, `id` change only under the registry mutex AND the session mutex
//     (create/destroy), so a holder of either sees them stable. One exception: the index rebuild
//     (registry repair, or tombstones piling up) frees, under the registry mutex alone, a slot
//     whose id is garbage or that no longer fits the index; such a slot is corrupt already.
//   * `blob` changes only under the session mutex AND the alloc mutex (commit, destroy), so the
//     alloc repair, which holds only the alloc mutex, sees a whole value; that repair itself
//     clears the `blob` of a free slot (I10).
//   * `last_used_ns` is a relaxed hint for idle expiry: a time (queued grants, a holder's
//     set_ttl/touch, under the session mutex) or kUsedNow, a use not yet dated, which every release
//     (the fast one without the mutex) and a client's revoke thread (thread unlocks, within a
//     second) store so that they read no clock. The broker's expiry pass dates kUsedNow to its own
//     clock (one compare-and-swap: a use stored meanwhile wins), so a session's idle time starts at
//     most one pass (1 s) late; readers take kUsedNow as "now" (shm::last_used_at). `ttl_ms` is
//     written at create and by a holder's set_ttl.
//   * `grants` and `waits` are read by tools without the mutex; `grants` is also counted (atomic
//     add) by the fast path without it.
//   * `fast` is the uncontended fast path's word (LAYOUT.md "Fast path"; the protocol is in
//     libsession/src/fast_owner.hpp): an owner moves it idle -> owned and back without the mutex;
//     a mutex holder makes it "slow" while it works and settles it again before unlocking.
// Crash of a session-mutex holder: the session repair (Repair::repair_session in
// libsession/src/repair.cpp) rebuilds holders, queue and mode from the lock records, then grants
// and wakes; see LAYOUT.md "Repair summary".
#pragma once

#include <cstdint>
#include <string_view>
#include <type_traits>

#include "sessionbroker/shm/constants.hpp"
#include "sessionbroker/shm/robust_mutex.hpp"

namespace sessionbroker::shm {

// `last_used_ns` of a session used since the broker's last expiry pass (no clock read for it).
inline constexpr std::uint64_t kUsedNow = ~std::uint64_t{0};

struct alignas(64) SessionSlot {
  RobustMutexData mutex;
  std::uint64_t fast;          // generation << 32 | code: 0 slow, kFastIdle idle, else owner record + 1
  std::uint32_t state;         // SessionState
  std::uint32_t generation;    // incremented on each create and destroy; handles carry it to detect reuse
  std::uint32_t lock_mode;     // LockMode of the current holders (kNone when none)
  std::uint32_t holder_count;
  std::uint32_t holders_head;  // first granted record, or kNil (order irrelevant)
  std::uint32_t queue_head;    // oldest waiting record, or kNil
  std::uint32_t queue_tail;    // newest waiting record, or kNil
  std::uint32_t queue_len;
  std::uint64_t next_ticket;   // FIFO ticket for the next enqueue; only grows
  std::uint32_t blob;          // first block of the committed state, or kNil for "no attributes"
  std::uint32_t id_len;
  std::uint32_t free_next;     // next free slot while kFree (registry mutex), else kNil
  std::uint32_t reserved;
  std::uint64_t last_used_ns;  // CLOCK_MONOTONIC of the last use the broker has dated, or kUsedNow (see above)
  std::uint64_t ttl_ms;        // idle time after which the broker expires the session; 0 = never
  std::uint64_t created_at_ns; // CLOCK_REALTIME, for tools
  std::uint64_t version;       // count of commits; written (atomic) with `blob` under both mutexes; a holder reads both without
  std::uint64_t grants;        // lifetime grants, for tools
  std::uint64_t waits;         // lifetime enqueues (requests that could not be granted at once)
  char id[kMaxSessionIdBytes];
};
static_assert(std::is_standard_layout_v<SessionSlot> && std::is_trivially_copyable_v<SessionSlot>);

// The session's id, never longer than the array: id_len comes from shared memory and may be garbage.
inline std::string_view session_id(const SessionSlot& s) {
  return {s.id, s.id_len < kMaxSessionIdBytes ? s.id_len : kMaxSessionIdBytes};
}

// Session index: open addressing with linear probing over `index_size` (a power of two) words,
// each kIndexEmpty, kIndexTombstone or a session slot number. Guarded by the registry mutex;
// rebuilt from the session table by the registry repair.
inline constexpr std::uint32_t kIndexEmpty = kNil;
inline constexpr std::uint32_t kIndexTombstone = kNil - 1;

}  // namespace sessionbroker::shm
