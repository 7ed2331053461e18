// stats: the segment's counters, lock-wait and handoff latency histograms, per-client figures,
// the most contended sessions and memory use, as a table, JSON or Prometheus text.
//
// Process safety: stats does not attach and takes no mutex (detail::collect_stats reads with
// relaxed loads), so it can never slow the lock path or wedge on a dead process's mutex. Each
// figure is a recent value; figures are not one instant.
#include <cstdio>
#include <memory>
#include <string>

#include "commands.hpp"
#include "help.hpp"
#include "segment.hpp"
#include "stats.hpp"
#include "stats_render.hpp"

namespace sessionctl {
namespace {

namespace detail = sessionbroker::detail;

struct StatsArgs {
  std::string segment;
  bool json = false, prometheus = false;
  std::size_t top = 10;
};

int run_stats(const StatsArgs& a) {
  if (auto refused = refuse_etcd_store(a.segment, "stats")) return *refused;
  auto seg = detail::Segment::open(a.segment);
  if (!seg) return fail(seg.status());
  const detail::SegmentStats s = detail::collect_stats(**seg, a.top);
  const std::string text = a.json         ? render_stats_json(s, a.segment)
                           : a.prometheus ? render_stats_prometheus(s, a.segment)
                                          : render_stats_table(s, a.segment);
  std::fwrite(text.data(), 1, text.size(), stdout);
  return std::fflush(stdout) == 0 ? kExitOk : kExitError;
}

}  // namespace

void add_stats_command(CLI::App& app, Action& action) {
  auto a = std::make_shared<StatsArgs>();
  auto* sub = app.add_subcommand("stats", "counters, lock latency histograms, clients and busiest sessions (without attaching)");
  add_store_option(*sub, a->segment);
  auto* json = sub->add_flag("--json", a->json, "one JSON document (keys documented in tools/sessionctl/stats_render.cpp)");
  sub->add_flag("--prometheus", a->prometheus, "Prometheus text format 0.0.4, for node_exporter's textfile collector")
      ->excludes(json);
  sub->add_option("--top", a->top, "how many of the most contended sessions to list")->capture_default_str();
  set_man_page(*sub, {
      .description =
          "Prints what the segment has counted since it was created: grants, handoffs (grants after queueing), "
          "timeouts, revokes honoured, locks broken and commits, summed over every client that ever attached; the "
          "lock-wait latency (request to grant) and handoff latency (a releaser's grant to the waiter running) "
          "as p50, p90, p99 and the highest non-empty histogram bucket; each attached client's locks held and "
          "queued and its counters since it attached; the sessions with the longest queues and most waits; "
          "and attribute memory in use.\n"
          "\n"
          "Latencies come from histograms with four buckets per power of two: a figure is its bucket's upper "
          "bound, at most 25% above the true value.\n"
          "\n"
          "It does not attach and takes no mutex: it reads the counters each client keeps on its own cache "
          "lines, so it never slows a lock or waits for one. Figures are recent values, not one instant.\n",
      .examples =
          "  $ sessionctl stats\n"
          "\n"
          "Lock grants per second over a minute, from two JSON documents:\n"
          "  $ a=$(sessionctl stats --json | jq .counters.grants); sleep 60\n"
          "  $ echo $(( ($(sessionctl stats --json | jq .counters.grants) - a) / 60 ))\n"
          "\n"
          "For node_exporter's textfile collector, run every minute (from cron or a systemd timer) in its "
          "directory; the collector reads only *.prom files, and the rename replaces the old file at once:\n"
          "  $ cd /var/lib/node_exporter/textfile_collector\n"
          "  $ sessionctl stats --prometheus > sessionbroker.tmp && mv sessionbroker.tmp sessionbroker.prom\n",
  });
  sub->callback([&action, a] { action = [a] { return run_stats(*a); }; });
}

}  // namespace sessionctl
