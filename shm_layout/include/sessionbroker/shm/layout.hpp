// Region map of a segment, computed from its capacities, and the layout fingerprint.
// LAYOUT.md section "Region map". Pure functions: no process state.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <sys/types.h>

#include "sessionbroker/shm/block.hpp"
#include "sessionbroker/shm/client_slot.hpp"
#include "sessionbroker/shm/client_stats.hpp"
#include "sessionbroker/shm/constants.hpp"
#include "sessionbroker/shm/lock_record.hpp"
#include "sessionbroker/shm/segment_header.hpp"
#include "sessionbroker/shm/session_slot.hpp"
#include "sessionbroker/shm/state_words.hpp"

namespace sessionbroker::shm {

inline constexpr std::uint64_t align_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }

// FNV-1a: stable across compilers and runs, unlike std::hash. Used for the fingerprint and the
// session index, both of which several binaries must agree on.
inline constexpr std::uint64_t fnv1a(const void* data, std::size_t n, std::uint64_t h = 0xcbf29ce484222325ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

// Binaries built with different struct sizes or native types must refuse each other's segments.
inline std::uint64_t layout_fingerprint() {
  const std::uint64_t sizes[] = {kLayoutVersion,      sizeof(SegmentHeader), sizeof(ClientSlot),
                                 sizeof(LockRecord),  sizeof(SessionSlot),   sizeof(Block),
                                 sizeof(pthread_mutex_t), sizeof(pid_t),     kMaxSessionIdBytes,
                                 kMaxAttrNameBytes,   alignof(SessionSlot),  sizeof(ClientStats),
                                 kLatencyBuckets};
  return fnv1a(sizes, sizeof(sizes));
}

// nullopt when the capacities are out of range (zero, above the ceilings, or inconsistent).
inline std::optional<Regions> compute_regions(const Capacities& c) {
  if (c.max_clients == 0 || c.max_clients > kMaxClients) return std::nullopt;
  if (c.locks_per_client == 0 || c.locks_per_client > kMaxLocksPerClient) return std::nullopt;
  if (c.max_sessions == 0 || c.max_sessions > kMaxSessions) return std::nullopt;
  if (c.block_count == 0 || c.block_count > kMaxBlocks) return std::nullopt;
  if (c.max_value_bytes == 0 || c.max_value_bytes > std::uint64_t{c.block_count} * kBlockPayload) return std::nullopt;
  if (std::uint64_t{c.max_clients} * c.locks_per_client >= kNil) return std::nullopt;
  Regions r{};
  std::uint64_t at = align_up(sizeof(SegmentHeader), 64);
  r.clients = at;
  at = align_up(at + std::uint64_t{c.max_clients} * sizeof(ClientSlot), 64);
  r.records = at;
  at = align_up(at + std::uint64_t{c.max_clients} * c.locks_per_client * sizeof(LockRecord), 64);
  r.sessions = at;
  at = align_up(at + std::uint64_t{c.max_sessions} * sizeof(SessionSlot), 64);
  r.index_size = static_cast<std::uint32_t>(std::bit_ceil(std::uint64_t{c.max_sessions} * 2));
  r.index = at;
  at = align_up(at + std::uint64_t{r.index_size} * sizeof(std::uint32_t), 64);
  r.blocks = at;
  at = align_up(at + std::uint64_t{c.block_count} * sizeof(Block), 64);
  r.stats = at;
  at = align_up(at + std::uint64_t{c.max_clients} * sizeof(ClientStats), 4096);
  r.end = at;
  return r;
}

inline bool same_regions(const Regions& a, const Regions& b) {
  return a.clients == b.clients && a.records == b.records && a.sessions == b.sessions &&
         a.index == b.index && a.blocks == b.blocks && a.stats == b.stats && a.end == b.end && a.index_size == b.index_size;
}

}  // namespace sessionbroker::shm
