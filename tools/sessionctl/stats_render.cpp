// Renders a SegmentStats as a table or as JSON (Prometheus text: stats_prometheus.cpp).
//
// JSON shape (keys in this order; every key is always present; counters are named by
// counter_name(): grants, handoffs, timeouts, revokes, broken, commits):
//   {
//     "segment": "sessionbroker",
//     "broker_pid": 812,                       // 0 when no broker has the segment
//     "next_token": 1712000000124,             // the token the next grant will get
//     "repairs": 0,                            // owner-dead repairs run, ever
//     "clients_live": 3, "clients_max": 64,
//     "sessions_live": 2, "sessions_max": 4096,
//     "memory": {"blocks_used": 12, "blocks_total": 262144, "block_bytes": 256, "segment_bytes": 69242880},
//     "counters": {"grants": 120, "handoffs": 3, ...},   // summed over every client ever: only grow
//     "latency": {
//       "wait":    {"count": 120, "p50_ns": 1024, "p90_ns": 4096, "p99_ns": 81920, "max_ns": 98304,
//                   "buckets": [{"from_ns": 768, "to_ns": 896, "count": 7}]},  // non-empty buckets
//       "handoff": {...}                       // same shape; to_ns is null for the open last bucket
//     },                                       // p*_ns, max_ns: bucket upper bounds (<= 25% high); 0 when empty
//     "clients": [{"slot": 0, "pid": 1234, "state": "live" | "dead" | "evicted",
//                  "attached_at_ns": 1712000000000000000,   // CLOCK_REALTIME
//                  "held": 1, "waiting": 0,                 // lock records now
//                  "counters": {"grants": 12, ...}}],       // since this client attached; by slot
//     "top_sessions": [{"id": "user:42", "mode": "none" | "shared" | "exclusive",
//                       "holders": 1, "queue": 2, "grants": 40, "waits": 15}]  // most contended first
//   }
#include "stats_render.hpp"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "dump_render.hpp"

namespace sessionctl {
namespace {

namespace detail = sessionbroker::detail;
namespace shm = sessionbroker::shm;
using Json = nlohmann::ordered_json;

constexpr std::size_t kCounters = static_cast<std::size_t>(shm::Counter::kCount);

std::string format_bytes(std::uint64_t bytes) {
  if (bytes < 1024) return fmt::format("{} B", bytes);
  constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes) / 1024;
  std::size_t u = 0;
  for (; v >= 1024 && u + 1 < std::size(kUnits); ++u) v /= 1024;
  return fmt::format("{:.1f} {}", v, kUnits[u]);
}

std::string join(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + '\n';
  return out;
}

// ---- table ----

std::string overview(const detail::SegmentStats& s, const std::string& segment) {
  const std::string broker = s.broker_pid != 0 ? fmt::format("broker pid {}", s.broker_pid) : "no broker";
  return fmt::format(
      "segment {}: {}, next token {}, {} repairs\n"
      "clients {} of {}, sessions {} of {}, memory {} of {} blocks in use ({} of {})\n",
      printable(segment), broker, s.next_token, s.repairs, s.clients_live, s.clients_max, s.sessions_live,
      s.sessions_max, blocks_used(s), s.blocks_total, format_bytes(blocks_used(s) * s.block_bytes),
      format_bytes(s.blocks_total * s.block_bytes));
}

std::string counters_line(const detail::Counters& c) {
  std::string out;
  for (std::size_t i = 0; i < kCounters; ++i)
    out += fmt::format("{}{} {}", i ? "  " : "", detail::counter_name(static_cast<shm::Counter>(i)), c[i]);
  return out + '\n';
}

Row latency_row(const char* what, const detail::LatencyHistogram& h) {
  const auto q = [&h](double p) { return h.total() ? format_ns(h.quantile_ns(p)) : std::string("-"); };
  return {what, std::to_string(h.total()), q(0.5), q(0.9), q(0.99), q(1.0)};
}

std::string latency_table(const detail::SegmentStats& s) {
  return join(table_lines({{"LATENCY", "COUNT", "P50", "P90", "P99", "MAX"},
                           latency_row("lock wait", s.wait),
                           latency_row("handoff", s.handoff)})) +
         "(latencies are histogram bucket upper bounds: at most 25% above the true value)\n";
}

std::string clients_table(const detail::SegmentStats& s) {
  Row header{"CLIENT", "PID", "STATE", "HELD", "WAITING"};
  for (std::size_t i = 0; i < kCounters; ++i) {
    std::string name = detail::counter_name(static_cast<shm::Counter>(i));
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char ch) { return std::toupper(ch); });
    header.push_back(name);
  }
  std::vector<Row> rows{header};
  for (const auto& c : s.clients) {
    Row r{std::to_string(c.slot), std::to_string(c.pid), client_state_name(c.state), std::to_string(c.held),
          std::to_string(c.waiting)};
    for (auto v : c.since_attach) r.push_back(std::to_string(v));
    rows.push_back(std::move(r));
  }
  return join(table_lines(rows));
}

std::string sessions_table(const detail::SegmentStats& s) {
  std::vector<Row> rows{{"SESSION", "MODE", "HOLDERS", "QUEUE", "GRANTS", "WAITS"}};
  for (const auto& v : s.sessions)
    rows.push_back({printable(v.id), mode_name(v.mode), std::to_string(v.holders), std::to_string(v.queue_len),
                    std::to_string(v.grants), std::to_string(v.waits)});
  return join(table_lines(rows));
}

// ---- JSON ----

Json counters_json(const detail::Counters& c) {
  Json out = Json::object();
  for (std::size_t i = 0; i < kCounters; ++i) out[detail::counter_name(static_cast<shm::Counter>(i))] = c[i];
  return out;
}

Json histogram_json(const detail::LatencyHistogram& h) {
  Json buckets = Json::array();
  for (std::uint32_t b = 0; b < shm::kLatencyBuckets; ++b) {
    if (h.buckets[b] == 0) continue;
    const Json to = b + 1 < shm::kLatencyBuckets ? Json(shm::latency_bucket_floor(b + 1)) : Json(nullptr);
    buckets.push_back({{"from_ns", shm::latency_bucket_floor(b)}, {"to_ns", to}, {"count", h.buckets[b]}});
  }
  return {{"count", h.total()},          {"p50_ns", h.quantile_ns(0.5)}, {"p90_ns", h.quantile_ns(0.9)},
          {"p99_ns", h.quantile_ns(0.99)}, {"max_ns", h.quantile_ns(1.0)}, {"buckets", buckets}};
}

Json clients_json(const detail::SegmentStats& s) {
  Json out = Json::array();
  for (const auto& c : s.clients)
    out.push_back({{"slot", c.slot},        {"pid", c.pid},
                   {"state", client_state_name(c.state)}, {"attached_at_ns", c.attached_at_ns},
                   {"held", c.held},        {"waiting", c.waiting},
                   {"counters", counters_json(c.since_attach)}});
  return out;
}

Json sessions_json(const detail::SegmentStats& s) {
  Json out = Json::array();
  for (const auto& v : s.sessions)
    out.push_back({{"id", v.id},         {"mode", mode_name(v.mode)}, {"holders", v.holders},
                   {"queue", v.queue_len}, {"grants", v.grants},      {"waits", v.waits}});
  return out;
}

}  // namespace

const char* client_state_name(shm::ClientState s) {
  switch (s) {
    case shm::ClientState::kDead: return "dead";
    case shm::ClientState::kEvicted: return "evicted";
    default: return "live";
  }
}

std::uint64_t blocks_used(const detail::SegmentStats& s) { return s.blocks_total - std::min(s.blocks_free, s.blocks_total); }

std::string format_ns(std::uint64_t ns) {
  if (ns < 1000) return fmt::format("{}ns", ns);
  constexpr const char* kUnits[] = {"us", "ms", "s"};
  double v = static_cast<double>(ns) / 1e3;
  std::size_t u = 0;
  for (; v >= 1e3 && u + 1 < std::size(kUnits); ++u) v /= 1e3;
  const int decimals = v < 10 ? 2 : v < 100 ? 1 : 0;
  return fmt::format("{:.{}f}{}", v, decimals, kUnits[u]);
}

std::string printable(std::string_view s) {
  std::string out(s);
  for (char& ch : out)
    if (ch < 0x20 || ch > 0x7e) ch = '?';  // char may be signed: bytes >= 0x80 are negative
  return out;
}

std::vector<std::string> table_lines(const std::vector<Row>& rows) {
  std::vector<std::size_t> width;
  for (const auto& r : rows)
    for (std::size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], r[i].size());
    }
  std::vector<std::string> out;
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) line += i + 1 < r.size() ? fmt::format("{:<{}}  ", r[i], width[i]) : r[i];
    out.push_back(std::move(line));
  }
  return out;
}

std::string render_stats_table(const detail::SegmentStats& s, const std::string& segment) {
  return overview(s, segment) + "\n" + counters_line(s.totals) + "\n" + latency_table(s) + "\n" + clients_table(s) +
         "\n" + sessions_table(s);
}

std::string render_stats_json(const detail::SegmentStats& s, const std::string& segment) {
  const Json memory = {{"blocks_used", blocks_used(s)},
                       {"blocks_total", s.blocks_total},
                       {"block_bytes", s.block_bytes},
                       {"segment_bytes", s.segment_bytes}};
  const Json doc = {{"segment", segment},
                    {"broker_pid", s.broker_pid},
                    {"next_token", s.next_token},
                    {"repairs", s.repairs},
                    {"clients_live", s.clients_live},
                    {"clients_max", s.clients_max},
                    {"sessions_live", s.sessions_live},
                    {"sessions_max", s.sessions_max},
                    {"memory", memory},
                    {"counters", counters_json(s.totals)},
                    {"latency", {{"wait", histogram_json(s.wait)}, {"handoff", histogram_json(s.handoff)}}},
                    {"clients", clients_json(s)},
                    {"top_sessions", sessions_json(s)}};
  // Session ids are bytes, not necessarily UTF-8: invalid sequences become U+FFFD, never an exception.
  return doc.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

}  // namespace sessionctl
