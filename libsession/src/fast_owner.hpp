// The uncontended fast path's word, SessionSlot::fast (LAYOUT.md "Fast path", docs/protocol.md
// §2a): an exclusive lock on a session nobody else holds or waits for is taken and given back with
// compare-and-swaps on this word and on the record's state, without the session mutex.
//
// The word is `generation << 32 | code`:
//   slow       (code 0)         the mutex-guarded lists say who holds and waits. Always while a
//                               mutex holder works, and while the session has a queue, shared or
//                               several holders, or is not live. A zeroed slot is slow.
//   idle(gen)  (code kFastIdle) live session of that generation, no holder, no waiter.
//   owned(gen, rec) (rec + 1)   record `rec` is the one holder, exclusive, and on no list; no waiter.
//
// Who writes it:
//   * an owner, without the mutex: idle -> owned (acquire_fast) and owned -> idle (release_fast);
//   * a mutex holder: absorb() right after locking (any -> slow; the owner's record goes on the
//     holder list if it is kGranted; a kFree one, whose owner has not stored its grant yet, and a
//     kReleasing one, being given back, stay off it); settle() right before unlocking (slow ->
//     idle when no one holds or waits, slow -> owned(holder) when one exclusive kGranted holder and
//     no waiter are left, taking it off the list). Between the two the lists are the truth, as
//     they always were, so every locked step of the lock table, the registry, the admin and the
//     repair works unchanged.
//
// Holders, when the mutex is free: the holder list plus the word's owner if its record is
// kGranted. A record's `state` is still the one word that says what the record is (the repair
// rebuilds from it): an owner stores its token and fields before it publishes the word, stores
// kGranted after, and then reads the word again; if a mutex holder took the word in between, the
// owner lets the lists decide (LockTable::confirm_fast). It gives back by kGranted -> kReleasing,
// then the word, then kFree. So a crash at any step leaves a kFree record the word names (never a
// holder), a kGranted one the next absorb links (a dead holder, reclaimed as any other), or a
// kReleasing one no list keeps (docs/protocol.md §2a has the table). A dead client's reclaim
// follows the word to records it names even when they are kFree, so no word names a record after
// its client slot is reused.
//
// Thread safety: any thread of any process; absorb and settle REQUIRE the session mutex.
#pragma once

#include <cstdint>
#include <optional>

#include "segment.hpp"

namespace sessionbroker::detail::fast {

inline constexpr std::uint32_t kFastIdle = 0xFFFFFFFFu;
inline constexpr std::uint64_t kSlow = 0;

inline std::uint64_t idle(std::uint32_t gen) { return std::uint64_t{gen} << 32 | kFastIdle; }
inline std::uint64_t owned(std::uint32_t gen, std::uint32_t rec) { return std::uint64_t{gen} << 32 | (rec + 1); }
inline std::uint32_t generation_of(std::uint64_t w) { return static_cast<std::uint32_t>(w >> 32); }
// The record an owned word names; nullopt for slow and idle.
inline std::optional<std::uint32_t> owner_of(std::uint64_t w) {
  const auto code = static_cast<std::uint32_t>(w);
  if (code == 0 || code == kFastIdle) return std::nullopt;
  return code - 1;
}

// Whether the word of `slot` names `rec` (of the generation `rec` was prepared for). No mutex.
bool names(const Segment& seg, std::uint32_t slot, std::uint32_t rec);

// REQUIRES: the session mutex of `slot`, just locked. Makes the word slow; with `link`, a kGranted
// record it named goes on the holder list (without: the repair, which rebuilds the lists from the
// records next, finds it there).
void absorb(Segment& seg, std::uint32_t slot, bool link);

// REQUIRES: the session mutex of `slot`, about to be unlocked. Idle when the live session has no
// holder and no waiter; owned by its holder when that is one exclusive kGranted record and no one
// waits (the record leaves the list); slow otherwise.
void settle(Segment& seg, std::uint32_t slot);

}  // namespace sessionbroker::detail::fast
