// Per-client statistics: counters and latency histograms. LAYOUT.md section "Statistics".
//
// Writers: only the process that owns client slot c writes ClientStats[c] (any of its threads,
// relaxed fetch_add), so no cache line of this region is written by two processes: the lock path
// pays for an uncontended add on a line it owns. Readers (sessionctl stats/watch) load relaxed and
// may see one counter a step ahead of another; that is all the consistency statistics need.
//
// The counters of a slot are never reset: they accumulate over every client that used the slot,
// so the sum over all slots only grows (a Prometheus counter) and a death or reclaim never needs
// to fold anything anywhere. The attaching process copies the counters into `baseline` before it
// publishes its slot kLive; "since this client attached" is counters - baseline. A crash half-way
// through that copy leaves a slot that is not kLive, and the next attach copies again.
//
// Nothing in the lock protocol reads these words: a torn or garbage value misreports, never breaks.
#pragma once

#include <bit>
#include <cstdint>
#include <type_traits>

namespace sessionbroker::shm {

// Index of each counter in ClientStats::counters.
enum class Counter : std::uint32_t {
  kGrants = 0,     // process-lock grants received (immediate or after queueing)
  kHandoffs = 1,   // grants received after queueing: the lock came from another holder
  kTimeouts = 2,   // requests that left the queue at their deadline
  kRevokes = 3,    // cached locks given back because another process asked (revoke honoured)
  kBroken = 4,     // locks this client lost by force (revoke deadline, break-lock, eviction, expiry)
  kCommits = 5,    // attribute commits
  kCount = 6,
};
inline constexpr std::uint32_t kCounterSlots = 8;  // counters[] size; the spare slots read 0

// Latency histogram buckets: bucket 0 holds values under 64 ns; above that each power of two is
// split in 4 (bucket width = 1/4 of its octave, at most 25% error), up to 2^37 ns (137 s); the
// last bucket holds everything longer.
inline constexpr std::uint32_t kLatencyBuckets = 128;
inline constexpr std::uint32_t kLatencyMinShift = 6;

inline constexpr std::uint32_t latency_bucket(std::uint64_t ns) {
  if (ns < (1ull << kLatencyMinShift)) return 0;
  const std::uint32_t octave = static_cast<std::uint32_t>(std::bit_width(ns)) - 1;  // >= kLatencyMinShift
  const std::uint32_t quarter = static_cast<std::uint32_t>(ns >> (octave - 2)) & 3u;
  const std::uint64_t b = 1 + std::uint64_t{octave - kLatencyMinShift} * 4 + quarter;
  return b < kLatencyBuckets ? static_cast<std::uint32_t>(b) : kLatencyBuckets - 1;
}

// Smallest value that falls in bucket `b` (0 for bucket 0).
inline constexpr std::uint64_t latency_bucket_floor(std::uint32_t b) {
  if (b == 0) return 0;
  const std::uint32_t octave = kLatencyMinShift + (b - 1) / 4, quarter = (b - 1) % 4;
  return (4ull + quarter) << (octave - 2);
}

struct alignas(64) ClientStats {
  std::uint64_t counters[kCounterSlots];   // indexed by Counter; only grow
  std::uint64_t baseline[kCounterSlots];   // counters at the current owner's attach
  std::uint64_t wait_ns[kLatencyBuckets];  // queued grants: enqueue -> grant. Grants at once (no wait)
                                           // are grants - handoffs: readers add them to bucket 0
  std::uint64_t handoff_ns[kLatencyBuckets];  // grant by the releaser -> queued waiter running again
};
static_assert(std::is_standard_layout_v<ClientStats> && std::is_trivially_copyable_v<ClientStats>);
static_assert(sizeof(ClientStats) % 64 == 0);
static_assert(latency_bucket(63) == 0 && latency_bucket(64) == 1 && latency_bucket(80) == 2 && latency_bucket(127) == 4);
static_assert(latency_bucket_floor(latency_bucket(1000)) <= 1000 && latency_bucket_floor(latency_bucket(1000) + 1) > 1000);

}  // namespace sessionbroker::shm
