// One attached process. LAYOUT.md section "Client table".
//
// Writers: the attaching process fills pid/start_time/generation under the registry mutex and
// publishes state = kLive last (release). A process that finds the owner dead (broker, or a waiter
// while the broker is down) moves kLive -> kDead with a CAS under the registry mutex, then reclaims
// its records and pending blob, and finally stores kFree. Every reclaim step is idempotent, so a
// crash of the reclaimer leaves a kDead slot that the registry repair finishes.
// Eviction (sessionctl evict-client): under the registry mutex kLive -> kEvicted, then every record
// of the slot is broken. The slot stays kEvicted, never reused, until its owner detaches (it sees
// kEvicted on its next call) or dies (then it is reclaimed like a kLive one).
#pragma once

#include <cstdint>
#include <type_traits>

namespace sessionbroker::shm {

struct alignas(64) ClientSlot {
  std::uint32_t state;          // ClientState; atomic
  std::uint32_t generation;     // incremented on every attach of this slot
  std::int32_t pid;             // owner; valid while state != kFree
  std::uint32_t notify;         // futex word: bumped to wake the owner's revoke thread
  std::uint64_t start_time;     // owner's /proc/<pid>/stat starttime: pid + this defeat pid reuse
  std::uint32_t pending_blob;   // first block of a blob being built by the owner, or kNil;
                                // written only under the alloc mutex
  std::uint32_t revoke_pending; // count of revoke flags raised on this client's records (hint)
  std::uint64_t attached_at_ns; // CLOCK_REALTIME of attach, for tools
  std::uint64_t reserved[3];    // 0; counters live in ClientStats (client_stats.hpp)
};
static_assert(std::is_standard_layout_v<ClientSlot> && std::is_trivially_copyable_v<ClientSlot>);
static_assert(sizeof(ClientSlot) == 64, "one cache line per client: no false sharing of counters");

}  // namespace sessionbroker::shm
