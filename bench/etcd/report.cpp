#include "report.hpp"

#include <fmt/format.h>

namespace sbetcd {

std::string format_ns(double ns) {
  if (ns < 1e3) return fmt::format("{:.0f} ns", ns);
  if (ns < 1e6) return fmt::format("{:.3g} µs", ns / 1e3);
  if (ns < 1e9) return fmt::format("{:.3g} ms", ns / 1e6);
  return fmt::format("{:.3g} s", ns / 1e9);
}

void Report::add(const std::string& group, const std::string& title, Side sb, Side peer) {
  complete_ = complete_ && !sb.ns.empty() && !peer.ns.empty();
  Row row{title, sb.label, peer.label, {}, {}};
  std::vector<double> a = sb.ns, b = peer.ns;
  row.sb = sbbench::summarize(a);
  row.peer = sbbench::summarize(b);
  sink_.latency("etcd." + group, title, "sb." + group, "sb", sb.label, std::move(sb.ns));
  sink_.latency("etcd." + group, title, "peer." + group, "peer", peer.label, std::move(peer.ns));
  rows_.push_back(std::move(row));
}

std::string Report::markdown() const {
  std::string t =
      "| scenario | sessionbroker | p50 | p99 | n | peer (same run) | p50 | p99 | n | ratio of p50s |\n"
      "|---|---|---:|---:|---:|---|---:|---:|---:|---:|\n";
  for (const Row& r : rows_) {
    auto cell = [](const sbbench::Summary& s) {
      return s.n ? fmt::format("{} | {} | {}", format_ns(s.p50), format_ns(s.p99), s.n) : std::string("failed | | 0");
    };
    const std::string ratio = r.sb.n && r.peer.n && r.peer.p50 > 0 ? fmt::format("{:.3g}x", r.sb.p50 / r.peer.p50) : "-";
    t += fmt::format("| {} | {} | {} | {} | {} | {} |\n", r.title, r.sb_label, cell(r.sb), r.peer_label, cell(r.peer), ratio);
  }
  return t;
}

}  // namespace sbetcd
