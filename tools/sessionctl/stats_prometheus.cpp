// Renders a SegmentStats in the Prometheus text exposition format 0.0.4, for node_exporter's
// textfile collector (write to a temporary file, then rename it into the collector's directory).
//
// Metrics (every series carries segment="NAME"; counters only grow, the segment never resets them):
//   sessionbroker_<counter>_total          counter    grants, handoffs, timeouts, revokes, broken, commits
//   sessionbroker_repairs_total            counter    owner-dead repairs
//   sessionbroker_lock_wait_seconds        histogram  lock request -> grant, every process-lock acquire
//   sessionbroker_lock_handoff_seconds     histogram  releaser's grant -> the queued waiter running
//   sessionbroker_clients, _clients_max    gauge      attached (live) client processes, capacity
//   sessionbroker_sessions, _sessions_max  gauge      live sessions, capacity
//   sessionbroker_locks_held, _locks_waiting           gauge  lock records granted / queued, all clients
//   sessionbroker_memory_blocks_used, _memory_blocks_total gauge  attribute-store blocks
//   sessionbroker_memory_block_bytes, sessionbroker_segment_bytes  gauge
//   sessionbroker_next_token, sessionbroker_broker_pid (0: no broker)   gauge
//   sessionbroker_client_<counter>_total{slot,pid}     counter  since that client attached
//   sessionbroker_client_locks_held{slot,pid}, sessionbroker_client_locks_waiting{slot,pid}  gauge
//
// Histogram buckets: a fixed set of bounds, every power of two nanoseconds from 128 ns to 2^37 ns
// (137 s), so series never come and go between scrapes. Each bound is also a bound of the
// recorder's own buckets (client_stats.hpp), so the cumulative counts are exact: le="B" counts the
// values below B ns. _sum adds each recorder bucket's lower bound (an underestimate, at most 25%).
#include <cstdint>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "stats_render.hpp"

namespace sessionctl {
namespace {

namespace detail = sessionbroker::detail;
namespace shm = sessionbroker::shm;

constexpr unsigned kFirstBoundLog2 = 7, kLastBoundLog2 = 37;

constexpr bool bounds_are_recorder_bounds() {
  for (unsigned k = kFirstBoundLog2; k <= kLastBoundLog2; ++k)
    if (shm::latency_bucket_floor(shm::latency_bucket(1ull << k)) != 1ull << k) return false;
  return shm::latency_bucket(1ull << kLastBoundLog2) + 1 < shm::kLatencyBuckets;  // below the open last bucket
}
static_assert(bounds_are_recorder_bounds(), "a histogram bound would split a recorder bucket");

// Label values escape backslash, double quote and newline (format 0.0.4).
std::string escape_label(std::string_view v) {
  std::string out;
  for (char ch : v) {
    if (ch == '\\' || ch == '"') out += '\\';
    if (ch == '\n') {
      out += "\\n";
      continue;
    }
    out += ch;
  }
  return out;
}

double seconds(std::uint64_t ns) { return static_cast<double>(ns) / 1e9; }

// The families of one exposition, written one after another (the format forbids interleaving).
class Exposition {
 public:
  explicit Exposition(std::string_view segment) : segment_label_(fmt::format("segment=\"{}\"", escape_label(segment))) {}

  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }
  // `labels`: extra labels after segment, already escaped ("le=\"0.5\"").
  template <class V>
  void sample(std::string_view name, const V& value, std::string_view labels = {}) {
    out_ += fmt::format("{}{{{}{}{}}} {}\n", name, segment_label_, labels.empty() ? "" : ",", labels, value);
  }
  template <class V>
  void gauge(std::string_view name, std::string_view help, const V& value) {
    family(name, "gauge", help);
    sample(name, value);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string segment_label_, out_;
};

const char* counter_help(shm::Counter c) {
  switch (c) {
    case shm::Counter::kGrants: return "Process-lock grants, immediate or after queueing.";
    case shm::Counter::kHandoffs: return "Grants received after queueing: the lock came from another holder.";
    case shm::Counter::kTimeouts: return "Lock requests that left the queue at their deadline.";
    case shm::Counter::kRevokes: return "Cached locks given back because another process asked.";
    case shm::Counter::kBroken: return "Locks lost by force (revoke deadline, break-lock, eviction, expiry).";
    case shm::Counter::kCommits: return "Attribute commits.";
    case shm::Counter::kCount: break;
  }
  return "";
}

void histogram(Exposition& x, const std::string& name, std::string_view help, const detail::LatencyHistogram& h) {
  x.family(name, "histogram", help);
  std::uint64_t below = 0, sum_ns = 0;
  std::uint32_t b = 0;
  for (unsigned k = kFirstBoundLog2; k <= kLastBoundLog2; ++k) {
    for (const std::uint32_t end = shm::latency_bucket(1ull << k); b < end; ++b) below += h.buckets[b];
    x.sample(name + "_bucket", below, fmt::format("le=\"{}\"", seconds(1ull << k)));
  }
  for (std::uint32_t i = 0; i < shm::kLatencyBuckets; ++i) sum_ns += h.buckets[i] * shm::latency_bucket_floor(i);
  x.sample(name + "_bucket", h.total(), "le=\"+Inf\"");
  x.sample(name + "_sum", seconds(sum_ns));
  x.sample(name + "_count", h.total());
}

void segment_counters(Exposition& x, const detail::SegmentStats& s) {
  for (std::size_t i = 0; i < s.totals.size(); ++i) {
    const auto c = static_cast<shm::Counter>(i);
    const std::string name = fmt::format("sessionbroker_{}_total", detail::counter_name(c));
    x.family(name, "counter", counter_help(c));
    x.sample(name, s.totals[i]);
  }
  x.family("sessionbroker_repairs_total", "counter", "Repairs run after a mutex owner died.");
  x.sample("sessionbroker_repairs_total", s.repairs);
}

void segment_gauges(Exposition& x, const detail::SegmentStats& s) {
  std::uint64_t held = 0, waiting = 0;
  for (const auto& c : s.clients) {
    held += c.held;
    waiting += c.waiting;
  }
  x.gauge("sessionbroker_clients", "Attached client processes.", s.clients_live);
  x.gauge("sessionbroker_clients_max", "Client table capacity.", s.clients_max);
  x.gauge("sessionbroker_sessions", "Live sessions.", s.sessions_live);
  x.gauge("sessionbroker_sessions_max", "Session table capacity.", s.sessions_max);
  x.gauge("sessionbroker_locks_held", "Process locks held, all clients.", held);
  x.gauge("sessionbroker_locks_waiting", "Lock requests queued, all clients.", waiting);
  x.gauge("sessionbroker_memory_blocks_used", "Attribute-store blocks in use.", blocks_used(s));
  x.gauge("sessionbroker_memory_blocks_total", "Attribute-store blocks.", s.blocks_total);
  x.gauge("sessionbroker_memory_block_bytes", "Bytes per attribute-store block.", s.block_bytes);
  x.gauge("sessionbroker_segment_bytes", "Size of the shared-memory segment.", s.segment_bytes);
  x.gauge("sessionbroker_next_token", "The token the next grant will get.", s.next_token);
  x.gauge("sessionbroker_broker_pid", "Process id of the broker, 0 when none runs.", s.broker_pid);
}

std::string client_labels(const detail::ClientView& c) { return fmt::format("slot=\"{}\",pid=\"{}\"", c.slot, c.pid); }

// REQUIRES: !s.clients.empty() (a family without samples is not worth a line, and some parsers refuse it).
void client_series(Exposition& x, const detail::SegmentStats& s) {
  for (std::size_t i = 0; i < detail::Counters{}.size(); ++i) {
    const auto c = static_cast<shm::Counter>(i);
    const std::string name = fmt::format("sessionbroker_client_{}_total", detail::counter_name(c));
    x.family(name, "counter", fmt::format("Per client, since it attached: {}", counter_help(c)));
    for (const auto& v : s.clients) x.sample(name, v.since_attach[i], client_labels(v));
  }
  x.family("sessionbroker_client_locks_held", "gauge", "Process locks the client holds.");
  for (const auto& v : s.clients) x.sample("sessionbroker_client_locks_held", v.held, client_labels(v));
  x.family("sessionbroker_client_locks_waiting", "gauge", "Lock requests the client has queued.");
  for (const auto& v : s.clients) x.sample("sessionbroker_client_locks_waiting", v.waiting, client_labels(v));
}

}  // namespace

std::string render_stats_prometheus(const detail::SegmentStats& s, const std::string& segment) {
  Exposition x(segment);
  segment_counters(x, s);
  histogram(x, "sessionbroker_lock_wait_seconds",
            "Process-lock request to grant, every acquire (immediate or queued). Bucket bounds are powers of two "
            "nanoseconds; _sum is estimated from the recorder's bucket floors (an underestimate).",
            s.wait);
  histogram(x, "sessionbroker_lock_handoff_seconds",
            "A releaser's grant to the queued waiter running again. Bucket bounds are powers of two nanoseconds; "
            "_sum is estimated from the recorder's bucket floors (an underestimate).",
            s.handoff);
  segment_gauges(x, s);
  if (!s.clients.empty()) client_series(x, s);
  return x.take();
}

}  // namespace sessionctl
