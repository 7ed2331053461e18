// Plots with gnuplot: for each latency group, latency by percentile (the HdrHistogram layout: the
// x axis stretches the tail, 50% .. 99.9%), sessionbroker and what it is compared with on the
// same log-scaled axes; for throughput, operations per second against processes.
// Each plot's gnuplot script stays beside its PNG (DIR/plots/<group>.gp) so it can be re-drawn.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "report.hpp"

namespace sbreport {
namespace {

std::string quoted(std::string s) {
  for (char& c : s)
    if (c == '"') c = '\'';
  return "\"" + s + "\"";
}

std::string style(const Row& r) {
  if (r.is_sb() || r.role == "base") return "lw 3";
  return r.role == "floor" ? "lw 1.5 dt 2" : "lw 1.5";
}

const char* kHeader =
    "set terminal pngcairo noenhanced size 1000,820 font ',10'\n"
    "set encoding utf8\n"
    "set grid\n"
    "set key below vertical maxrows 10\n";

std::string latency_script(const Group& g, const std::string& png) {
  std::string gp = kHeader;
  gp += fmt::format("set output '{}'\nset title {}\n", png, quoted(g.title));
  gp += "set logscale xy 10\nset xrange [1:1000]\nset xlabel 'percentile'\nset ylabel 'latency'\n";
  gp += "set xtics ('0%%' 1, '50%%' 2, '90%%' 10, '99%%' 100, '99.9%%' 1000)\nset format y '%.0s %cs'\n";
  std::string plots;
  for (const auto& r : g.rows) {
    if (r.quantiles_file.empty()) continue;
    if (!plots.empty()) plots += ", \\\n     ";
    // Quantile q in column 1, ns in column 2; 1/(1-q) spreads the tail; rows 0..999 stop at 99.9%.
    plots += fmt::format("'{}' every ::0::999 using (1/(1-$1)):($2/1e9) with lines {} title {}", r.quantiles_file,
                         style(r), quoted(r.label));
  }
  if (plots.empty()) return {};
  return gp + "plot " + plots + "\n";
}

std::string throughput_script(const Group& g, const std::string& png) {
  std::string gp = kHeader;
  gp += fmt::format("set output '{}'\nset title {}\n", png, quoted(g.title));
  const std::string unit = g.rows.front().unit;
  gp += "set logscale x 2\nset logscale y 10\nset xlabel 'processes'\n";
  gp += unit == "ops/s" ? "set ylabel 'operations per second'\n" : fmt::format("set ylabel '{}'\n", unit);
  gp += "set format y '%.0s %c'\n";
  std::vector<std::string> ids;
  for (const auto& r : g.rows)
    if (std::find(ids.begin(), ids.end(), r.id) == ids.end()) ids.push_back(r.id);
  std::string plots;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    gp += fmt::format("$d{} << EOD\n", i);
    std::vector<const Row*> points;
    for (const auto& r : g.rows)
      if (r.id == ids[i]) points.push_back(&r);
    std::sort(points.begin(), points.end(), [](const Row* a, const Row* b) { return std::stoi(a->param) < std::stoi(b->param); });
    for (const Row* r : points) gp += fmt::format("{} {}\n", r->param, r->value);
    const Row* any = points.front();
    gp += "EOD\n";
    if (!plots.empty()) plots += ", \\\n     ";
    plots += fmt::format("$d{} using 1:2 with linespoints {} title {}", i, style(*any), quoted(any->label));
  }
  return gp + "plot " + plots + "\n";
}

}  // namespace

std::vector<std::string> draw_plots(const Suite& s) {
  std::vector<std::string> made;
  std::filesystem::create_directories(s.dir + "/plots");
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    std::fprintf(stderr, "sb_report: gnuplot not found, no plots (bench/setup.sh installs gnuplot-nox)\n");
    return made;
  }
  for (const auto& g : s.groups) {
    if (g.rows.empty()) continue;
    const bool pivot = !g.rows.front().param.empty();
    const bool latency = g.rows.front().unit == "ns";
    if (!pivot && !latency) continue;  // single values (bytes): the table says it all
    const std::string png = "plots/" + g.name + ".png", script = "plots/" + g.name + ".gp";
    const std::string gp = pivot ? throughput_script(g, png) : latency_script(g, png);
    if (gp.empty()) continue;
    std::ofstream(s.dir + "/" + script) << gp;
    const std::string cmd = fmt::format("cd '{}' && gnuplot '{}' 2>>plots/gnuplot.log", s.dir, script);
    if (std::system(cmd.c_str()) == 0) made.push_back(s.dir + "/" + png);
    else std::fprintf(stderr, "sb_report: gnuplot failed on %s (see %s/plots/gnuplot.log)\n", script.c_str(), s.dir.c_str());
  }
  return made;
}

}  // namespace sbreport
