// Layout of a watch frame (80x24 shown; a smaller window cuts lines on the right and the tables
// at the bottom, a taller one lists more sessions and clients):
//
//   sessionbroker shop  broker 812 up 3h12m  every 1s  q quits
//   clients 3/64  sessions 2/4096  memory 12/262144 blocks (0%)  queued 2
//   per second  grants 120.0  handoffs 3.0  revokes 2.0  timeouts 0.0
//   lock wait  p50/p99  last 1.02us/8.19us (120)   overall 1.02us/4.10us (5012)
//   handoff    p50/p99  last 24.6us/24.6us (3)     overall 20.5us/98.3us (40)
//
//   SESSION   MODE       HOLDERS  QUEUE  WAITS  GRANTS
//   user:42   exclusive  1        2      15     40
//
//   PID   STATE  HELD  WAITING  GRANTS  HANDOFFS  TIMEOUTS
//   1234  live   1     0        12      3         0
//
// Rates and "last" latencies cover the time between the two snapshots; "overall" latencies cover
// everything the segment recorded.
#include "watch_frame.hpp"

#include <algorithm>
#include <array>

#include <fmt/format.h>

#include "dump_render.hpp"
#include "stats_render.hpp"

namespace sessionctl {
namespace {

namespace detail = sessionbroker::detail;
namespace shm = sessionbroker::shm;

constexpr std::size_t kFixedLines = 9;   // five summary lines, two blank lines, two table headers
constexpr std::size_t kIdColumns = 30;   // longer session ids are cut, ending in '~'

std::uint64_t counter(const detail::Counters& c, shm::Counter which) { return c[static_cast<std::size_t>(which)]; }

std::string format_interval(std::chrono::milliseconds ms) {
  return ms.count() % 1000 == 0 ? fmt::format("{}s", ms.count() / 1000) : fmt::format("{}ms", ms.count());
}

std::string header_line(const FrameHeader& h) {
  return fmt::format("sessionbroker {}  {}  every {}  q quits", printable(h.segment), h.broker, format_interval(h.interval));
}

std::string capacity_line(const detail::SegmentStats& s) {
  std::uint64_t queued = 0;
  for (const auto& c : s.clients) queued += c.waiting;
  const double pct = s.blocks_total ? 100.0 * static_cast<double>(blocks_used(s)) / static_cast<double>(s.blocks_total) : 0;
  return fmt::format("clients {}/{}  sessions {}/{}  memory {}/{} blocks ({:.0f}%)  queued {}", s.clients_live,
                     s.clients_max, s.sessions_live, s.sessions_max, blocks_used(s), s.blocks_total, pct, queued);
}

std::string rates_line(const detail::SegmentStats& now, const detail::SegmentStats* before) {
  constexpr std::array kShown{shm::Counter::kGrants, shm::Counter::kHandoffs, shm::Counter::kRevokes,
                              shm::Counter::kTimeouts};
  const double dt = before ? static_cast<double>(now.taken_mono_ns - before->taken_mono_ns) / 1e9 : 0;
  std::string out = "per second";
  for (const auto c : kShown) {
    std::string rate = "-";
    if (dt > 0) {
      const std::uint64_t a = counter(before->totals, c), b = counter(now.totals, c);
      rate = fmt::format("{:.1f}", static_cast<double>(b > a ? b - a : 0) / dt);
    }
    out += fmt::format("  {} {}", detail::counter_name(c), rate);
  }
  return out;
}

// "1.02us/8.19us (120)", or "- (0)" when nothing was recorded.
std::string p50_p99(const detail::LatencyHistogram& h) {
  if (h.total() == 0) return "- (0)";
  return fmt::format("{}/{} ({})", format_ns(h.quantile_ns(0.5)), format_ns(h.quantile_ns(0.99)), h.total());
}

std::string latency_line(const char* what, const detail::LatencyHistogram& now, const detail::LatencyHistogram* before) {
  const std::string last = before ? p50_p99(now.since(*before)) : std::string("-");
  return fmt::format("{:<10} p50/p99  last {:<20}  overall {}", what, last, p50_p99(now));
}

std::string cut_id(const std::string& id) {
  std::string out = printable(id);
  if (out.size() > kIdColumns) out.replace(kIdColumns - 1, std::string::npos, "~");
  return out;
}

// Appends up to `room` rows for `items`; when not all fit, the last row says how many are left out.
template <class T, class ToRow>
void add_rows(std::vector<Row>& table, const std::vector<T>& items, std::size_t room, ToRow to_row) {
  const bool cut = items.size() > room;
  const std::size_t shown = cut && room > 0 ? room - 1 : std::min(room, items.size());
  for (std::size_t i = 0; i < shown; ++i) table.push_back(to_row(items[i]));
  if (cut && room > 0) table.push_back({fmt::format("(+{} more)", items.size() - shown)});
}

Row session_row(const detail::SessionView& v) {
  return {cut_id(v.id),           mode_name(v.mode),     std::to_string(v.holders), std::to_string(v.queue_len),
          std::to_string(v.waits), std::to_string(v.grants)};
}

Row client_row(const detail::ClientView& c) {
  return {std::to_string(c.pid),
          client_state_name(c.state),
          std::to_string(c.held),
          std::to_string(c.waiting),
          std::to_string(counter(c.since_attach, shm::Counter::kGrants)),
          std::to_string(counter(c.since_attach, shm::Counter::kHandoffs)),
          std::to_string(counter(c.since_attach, shm::Counter::kTimeouts))};
}

// Splits the rows below the summary between the two tables: sessions get at least half when
// they need it, and whatever the clients leave.
std::pair<std::size_t, std::size_t> table_rooms(const detail::SegmentStats& s, std::size_t rows) {
  const std::size_t budget = rows > kFixedLines ? rows - kFixedLines : 0;
  const std::size_t for_clients = std::min(budget, s.clients.size());
  const std::size_t sessions = std::min(s.sessions.size(), std::max(budget / 2, budget - for_clients));
  return {sessions, budget - sessions};
}

void append(std::vector<std::string>& out, std::vector<std::string> lines) {
  out.insert(out.end(), std::make_move_iterator(lines.begin()), std::make_move_iterator(lines.end()));
}

}  // namespace

std::vector<std::string> watch_frame(const FrameHeader& header, const detail::SegmentStats& now,
                                     const detail::SegmentStats* before, ScreenSize size) {
  std::vector<std::string> out{header_line(header), capacity_line(now), rates_line(now, before),
                               latency_line("lock wait", now.wait, before ? &before->wait : nullptr),
                               latency_line("handoff", now.handoff, before ? &before->handoff : nullptr), ""};
  const auto [session_room, client_room] = table_rooms(now, size.rows);
  std::vector<Row> sessions{{"SESSION", "MODE", "HOLDERS", "QUEUE", "WAITS", "GRANTS"}};
  add_rows(sessions, now.sessions, session_room, session_row);
  append(out, table_lines(sessions));
  out.emplace_back();
  std::vector<Row> clients{{"PID", "STATE", "HELD", "WAITING", "GRANTS", "HANDOFFS", "TIMEOUTS"}};
  add_rows(clients, now.clients, client_room, client_row);
  append(out, table_lines(clients));

  if (out.size() > size.rows) out.resize(size.rows);
  for (auto& line : out)
    if (line.size() > size.cols) line.resize(size.cols);
  return out;
}

}  // namespace sessionctl
