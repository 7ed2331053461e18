// The first bytes of the segment. LAYOUT.md sections "Header" and "Attach handshake".
//
// Creation: the broker fills every field with `magic` still 0, then stores `magic` (release).
// An attacher loads `magic` (acquire) and refuses a segment whose magic is 0 ("not initialised"),
// wrong ("not a sessionbroker segment"), or whose version, fingerprint, size or region offsets
// differ from what it computes itself from the capacities ("incompatible" / "corrupt").
// Offsets are never trusted as stored: they are recomputed from validated capacities and compared.
#pragma once

#include <cstdint>
#include <type_traits>

#include "sessionbroker/shm/robust_mutex.hpp"

namespace sessionbroker::shm {

struct Capacities {
  std::uint32_t max_clients;
  std::uint32_t locks_per_client;  // lock records (holders + waiters) per client
  std::uint32_t max_sessions;
  std::uint32_t block_count;       // attribute memory = block_count * kBlockBytes
  std::uint32_t max_value_bytes;   // per attribute value
  std::uint32_t reserved;
  std::uint64_t default_ttl_ms;    // idle expiry for sessions created without a TTL; 0 = never
  std::uint64_t revoke_deadline_ms;// a holder not releasing this long after a revoke loses the lock; 0 = off
};
static_assert(std::is_standard_layout_v<Capacities> && std::is_trivially_copyable_v<Capacities>);

struct Regions {
  std::uint64_t clients;   // ClientSlot[max_clients]
  std::uint64_t records;   // LockRecord[max_clients * locks_per_client]
  std::uint64_t sessions;  // SessionSlot[max_sessions]
  std::uint64_t index;     // uint32_t[index_size]
  std::uint64_t blocks;    // Block[block_count]
  std::uint64_t stats;     // ClientStats[max_clients]
  std::uint64_t end;       // total segment size
  std::uint32_t index_size;
  std::uint32_t reserved;
};

struct alignas(64) SegmentHeader {
  std::uint64_t magic;           // kMagic, stored last at creation
  std::uint32_t layout_version;  // kLayoutVersion
  std::uint32_t header_bytes;    // sizeof(SegmentHeader)
  std::uint64_t fingerprint;     // layout_fingerprint(): sizes of every struct and native type
  Capacities caps;
  Regions regions;
  std::uint64_t created_at_ns;   // CLOCK_REALTIME
  // 0, or 1 once a broker stopping with --remove-on-exit retired the segment: stored (seq_cst)
  // before it breaks every lock and unlinks the object, and read under a session mutex by every
  // acquire, so no grant is made in a segment that a new one may replace (LAYOUT.md "Retirement").
  // On the header's read-mostly lines: the lock path reads it without a cache miss.
  std::uint32_t retired;
  std::uint32_t reserved_flags;

  // Tokens: fetch_add(1) per grant. Seeded at creation from the realtime clock in microseconds,
  // so even a segment re-created from scratch does not hand out a token an old one did.
  alignas(64) std::uint64_t next_token;

  alignas(64) RobustMutexData registry_mutex;  // client table, session table structure, index
  std::uint32_t registry_epoch;  // futex word: bumped on attach/detach/death; the broker sleeps on it
  std::uint32_t broker_pid;      // 0 when no broker runs; informational
  std::uint64_t broker_start_time;
  std::uint32_t session_count;   // live sessions (registry mutex)
  std::uint32_t client_count;    // live clients (registry mutex)
  std::uint32_t session_free_head;  // first free session slot (SessionSlot::free_next chain), or kNil
  std::uint32_t index_tombstones;   // tombstones in the index; it is rebuilt when they pile up

  alignas(64) RobustMutexData alloc_mutex;  // free list, pending blobs, SessionSlot::blob
  std::uint32_t free_head;       // first free block, or kNil
  std::uint32_t free_count;      // blocks on the free list
  std::uint64_t repairs;         // count of owner-dead repairs run (any mutex), for tools
};
static_assert(std::is_standard_layout_v<SegmentHeader> && std::is_trivially_copyable_v<SegmentHeader>);

}  // namespace sessionbroker::shm
