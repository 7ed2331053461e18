#include "stats.hpp"

#include <algorithm>
#include <tuple>

#include "clock.hpp"
#include "fast_owner.hpp"
#include "segment.hpp"

namespace sessionbroker::detail {
namespace {

template <class T>
T relaxed(const T& word) {
  return shm::load(word, std::memory_order_relaxed);
}

void add_histogram(LatencyHistogram& into, const std::uint64_t (&from)[shm::kLatencyBuckets]) {
  for (std::uint32_t b = 0; b < shm::kLatencyBuckets; ++b) into.buckets[b] += relaxed(from[b]);
}

void count_records(const Segment& seg, std::uint32_t client, ClientView& view) {
  const std::uint32_t first = seg.first_record_of(client);
  for (std::uint32_t r = first; r < first + seg.caps().locks_per_client; ++r) {
    const auto st = shm::state(seg.record(r), std::memory_order_relaxed);
    if (st == shm::RecordState::kGranted) ++view.held;
    else if (st == shm::RecordState::kWaiting) ++view.waiting;
  }
}

}  // namespace

const char* counter_name(shm::Counter c) {
  switch (c) {
    case shm::Counter::kGrants: return "grants";
    case shm::Counter::kHandoffs: return "handoffs";
    case shm::Counter::kTimeouts: return "timeouts";
    case shm::Counter::kRevokes: return "revokes";
    case shm::Counter::kBroken: return "broken";
    case shm::Counter::kCommits: return "commits";
    case shm::Counter::kCount: break;
  }
  return "?";
}

Counters counters_since_attach(const Segment& seg, std::uint32_t client) {
  const auto& st = seg.stats(client);
  Counters out{};
  for (std::size_t i = 0; i < out.size(); ++i) {
    const std::uint64_t now = relaxed(st.counters[i]), base = relaxed(st.baseline[i]);
    out[i] = now > base ? now - base : 0;
  }
  return out;
}

std::uint64_t LatencyHistogram::total() const {
  std::uint64_t n = 0;
  for (auto v : buckets) n += v;
  return n;
}

std::uint64_t LatencyHistogram::quantile_ns(double q) const {
  const std::uint64_t n = total();
  if (n == 0) return 0;
  const auto rank = static_cast<std::uint64_t>(std::max(1.0, q * static_cast<double>(n) + 0.5));
  std::uint64_t seen = 0;
  for (std::uint32_t b = 0; b < shm::kLatencyBuckets; ++b) {
    seen += buckets[b];
    if (seen >= rank)
      return b + 1 < shm::kLatencyBuckets ? shm::latency_bucket_floor(b + 1) : shm::latency_bucket_floor(b);
  }
  return shm::latency_bucket_floor(shm::kLatencyBuckets - 1);
}

LatencyHistogram LatencyHistogram::since(const LatencyHistogram& earlier) const {
  LatencyHistogram d;
  for (std::uint32_t b = 0; b < shm::kLatencyBuckets; ++b)
    d.buckets[b] = buckets[b] > earlier.buckets[b] ? buckets[b] - earlier.buckets[b] : 0;
  return d;
}

SegmentStats collect_stats(const Segment& seg, std::size_t top_sessions) {
  const auto& h = seg.header();
  SegmentStats out;
  out.taken_mono_ns = mono_ns();
  for (std::uint32_t c = 0; c < seg.caps().max_clients; ++c) {
    const auto& st = seg.stats(c);
    for (std::size_t i = 0; i < out.totals.size(); ++i) out.totals[i] += relaxed(st.counters[i]);
    add_histogram(out.wait, st.wait_ns);
    add_histogram(out.handoff, st.handoff_ns);
    const auto& cs = seg.client(c);
    const auto state = shm::state(cs, std::memory_order_relaxed);
    if (state == shm::ClientState::kFree) continue;
    ClientView v{c, relaxed(cs.pid), state, relaxed(cs.attached_at_ns), counters_since_attach(seg, c)};
    count_records(seg, c, v);
    if (state == shm::ClientState::kLive) ++out.clients_live;
    out.clients.push_back(v);
  }
  const auto total = [&](shm::Counter k) { return out.totals[static_cast<std::size_t>(k)]; };
  const std::uint64_t at_once = total(shm::Counter::kGrants) - std::min(total(shm::Counter::kGrants), total(shm::Counter::kHandoffs));
  out.wait.buckets[0] += at_once;  // granted without waiting (client_stats.hpp)
  for (std::uint32_t slot = 0; slot < seg.caps().max_sessions; ++slot) {
    const auto& s = seg.session(slot);
    if (shm::state(s, std::memory_order_relaxed) != shm::SessionState::kLive) continue;
    ++out.sessions_live;
    // A fast-path owner (fast_owner.hpp) is a holder on no list.
    const bool fast_owned = fast::owner_of(relaxed(s.fast)).has_value();
    SessionView v{slot, std::string(shm::session_id(s)),
                  fast_owned ? shm::LockMode::kExclusive : shm::lock_mode(s, std::memory_order_relaxed),
                  relaxed(s.holder_count) + (fast_owned ? 1u : 0u), relaxed(s.queue_len), relaxed(s.grants), relaxed(s.waits)};
    if (v.grants == 0 && v.holders == 0 && v.queue_len == 0) continue;
    out.sessions.push_back(std::move(v));
  }
  const auto more_contended = [](const SessionView& a, const SessionView& b) {
    return std::tie(a.queue_len, a.waits, a.grants) > std::tie(b.queue_len, b.waits, b.grants);
  };
  const std::size_t keep = std::min(top_sessions, out.sessions.size());
  std::partial_sort(out.sessions.begin(), out.sessions.begin() + static_cast<std::ptrdiff_t>(keep), out.sessions.end(),
                    more_contended);
  out.sessions.resize(keep);
  out.sessions_max = seg.caps().max_sessions;
  out.clients_max = seg.caps().max_clients;
  out.blocks_total = seg.caps().block_count;
  out.blocks_free = relaxed(h.free_count);
  out.block_bytes = shm::kBlockBytes;
  out.segment_bytes = seg.size();
  out.next_token = relaxed(h.next_token);
  out.repairs = relaxed(h.repairs);
  out.broker_pid = static_cast<std::int32_t>(relaxed(h.broker_pid));
  return out;
}

}  // namespace sessionbroker::detail
