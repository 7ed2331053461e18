// Statistics: recording into this client's ClientStats line (lock path) and collecting a
// segment-wide picture for tools (sessionctl stats/watch). Layout and writer rules:
// shm_layout/include/sessionbroker/shm/client_stats.hpp.
//
// Recording: REQUIRES the calling process owns the ClientStats line (any thread). Never blocks,
// never allocates. Collecting: any process with the segment mapped; takes no mutex at all, so a
// tool can never slow the lock path or wedge on a dead process's mutex. Its figures are recent
// values, not one instant (a session id read while the session is destroyed may be stale).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "sessionbroker/shm/atomic_word.hpp"
#include "sessionbroker/shm/client_stats.hpp"
#include "sessionbroker/shm/constants.hpp"

namespace sessionbroker::detail {

class Segment;

inline void count_event(shm::ClientStats& st, shm::Counter c, std::uint64_t n = 1) {
  shm::fetch_add<std::uint64_t>(st.counters[static_cast<std::uint32_t>(c)], n, std::memory_order_relaxed);
}
inline void record_latency(std::uint64_t (&hist)[shm::kLatencyBuckets], std::uint64_t ns) {
  shm::fetch_add<std::uint64_t>(hist[shm::latency_bucket(ns)], 1, std::memory_order_relaxed);
}
// The attaching process, before it publishes its slot kLive (registry mutex held).
inline void record_baseline(shm::ClientStats& st) {
  for (std::uint32_t i = 0; i < shm::kCounterSlots; ++i)
    shm::store(st.baseline[i], shm::load(st.counters[i], std::memory_order_relaxed), std::memory_order_relaxed);
}

using Counters = std::array<std::uint64_t, static_cast<std::size_t>(shm::Counter::kCount)>;

struct LatencyHistogram {
  std::array<std::uint64_t, shm::kLatencyBuckets> buckets{};
  std::uint64_t total() const;
  // Upper bound of the bucket holding the q-quantile (0 < q <= 1), in ns; 0 when empty.
  std::uint64_t quantile_ns(double q) const;
  // Bucket-wise difference (this - earlier), for rates over an interval; never negative.
  LatencyHistogram since(const LatencyHistogram& earlier) const;
};

struct ClientView {
  std::uint32_t slot;
  std::int32_t pid;
  shm::ClientState state;       // kLive, kDead (reclaim pending) or kEvicted
  std::uint64_t attached_at_ns; // CLOCK_REALTIME
  Counters since_attach;        // counters - baseline
  std::uint32_t held = 0;       // granted lock records now
  std::uint32_t waiting = 0;    // queued lock records now
};

struct SessionView {
  std::uint32_t slot;
  std::string id;
  shm::LockMode mode;
  std::uint32_t holders, queue_len;
  std::uint64_t grants, waits;  // lifetime
};

struct SegmentStats {
  std::uint64_t taken_mono_ns = 0;        // CLOCK_MONOTONIC when collected, for rates
  Counters totals{};                      // summed over every slot: only grow
  LatencyHistogram wait, handoff;         // summed over every slot; wait counts grants at once as 0
  std::vector<ClientView> clients;        // every non-free client slot, by slot
  std::vector<SessionView> sessions;      // the most contended live sessions, most contended first
  std::uint32_t sessions_live = 0, sessions_max = 0, clients_live = 0, clients_max = 0;
  std::uint64_t blocks_total = 0, blocks_free = 0, block_bytes = 0, segment_bytes = 0;
  std::uint64_t next_token = 0, repairs = 0;
  std::int32_t broker_pid = 0;
};

const char* counter_name(shm::Counter c);

// The counters of client slot `client` since its current owner attached (counters - baseline).
Counters counters_since_attach(const Segment& seg, std::uint32_t client);  // "grants", "handoffs", ... (stable: JSON and metrics keys)

// Reads the segment without taking any mutex (relaxed loads; each figure is a recent value).
// `top_sessions`: how many sessions to list, ordered by (queue_len, waits, grants) descending;
// sessions never held are left out.
SegmentStats collect_stats(const Segment& seg, std::size_t top_sessions);

}  // namespace sessionbroker::detail
