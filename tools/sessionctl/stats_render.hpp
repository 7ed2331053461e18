// What `sessionctl stats` prints (a table for people, JSON for scripts, Prometheus text for a
// node_exporter textfile collector), and the text pieces `sessionctl watch` shares with it.
// The JSON shape and the metric names are documented at the top of stats_render.cpp; both are an
// interface: keys and names are only ever added.
//
// Everything here is a pure function of a SegmentStats (libsession/src/stats.hpp): nothing reads
// the segment, so a rendering never disagrees with itself (a histogram's +Inf bucket and its
// _count come from the same copy of the buckets).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "stats.hpp"

namespace sessionctl {

using Row = std::vector<std::string>;

// "live", "dead" or "evicted" (as in dump --json).
const char* client_state_name(sessionbroker::shm::ClientState s);
// Attribute-store blocks in use (the free count is read without the allocator's mutex: clamp it).
std::uint64_t blocks_used(const sessionbroker::detail::SegmentStats& s);
// "850ns", "12.3us", "1.20ms", "2.50s": three significant digits at most.
std::string format_ns(std::uint64_t ns);
// A session id fit for a terminal: every byte outside printable ASCII becomes '?', so one byte is
// one column and no escape sequence reaches the screen.
std::string printable(std::string_view s);
// Left-aligned columns two spaces apart (the last column is not padded); one string per row.
std::vector<std::string> table_lines(const std::vector<Row>& rows);

std::string render_stats_table(const sessionbroker::detail::SegmentStats& s, const std::string& segment);
std::string render_stats_json(const sessionbroker::detail::SegmentStats& s, const std::string& segment);
std::string render_stats_prometheus(const sessionbroker::detail::SegmentStats& s, const std::string& segment);

}  // namespace sessionctl
