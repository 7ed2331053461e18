// sb_report DIR: prints the suite's table and targets (also written to DIR/table.md) and draws
// DIR/plots/*.png with gnuplot. See report.hpp.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <tuple>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "report.hpp"

namespace sbreport {

const Row* Group::find(const std::string& id, const std::string& param) const {
  for (const auto& r : rows)
    if (r.id == id && r.param == param) return &r;
  return nullptr;
}

const Group* Suite::find(const std::string& name) const {
  for (const auto& g : groups)
    if (g.name == name) return &g;
  return nullptr;
}

std::optional<Suite> load(const std::string& dir) {
  Suite s;
  s.dir = dir;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().extension() != ".json") continue;
    std::ifstream in(entry.path());
    const auto j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.contains("sbbench")) continue;  // Google Benchmark's own JSON etc.
    for (const auto& e : j["results"]) {
      Row r;
      r.id = e.value("id", "");
      r.role = e.value("role", "");
      r.label = e.value("label", "");
      r.unit = e.value("unit", "");
      r.note = e.value("note", "");
      r.param = e.value("param", "");
      r.quantiles_file = e.value("quantiles_file", "");
      r.p50 = e.value("p50", 0.0);
      r.p99 = e.value("p99", 0.0);
      r.value = e.value("value", 0.0);
      r.n = e.value("n", std::size_t{0});
      const std::string name = e.value("group", "");
      auto it = std::find_if(s.groups.begin(), s.groups.end(), [&](const Group& g) { return g.name == name; });
      if (it == s.groups.end())
        it = s.groups.insert(s.groups.end(), Group{name, e.value("group_title", name), entry.path().filename().string(),
                                                   e.value("seq", 0), {}});
      it->rows.push_back(std::move(r));
    }
    for (const auto& line : j["skipped"]) s.skipped.push_back(line.get<std::string>());
  }
  if (ec || s.groups.empty()) {
    std::fprintf(stderr, "sb_report: no result files in %s\n", dir.c_str());
    return std::nullopt;
  }
  // Scenario order (s1 < s2 < ...), then the order the programs measured them in.
  std::stable_sort(s.groups.begin(), s.groups.end(), [](const Group& a, const Group& b) {
    return std::make_tuple(std::atoi(a.name.c_str() + 1), a.file, a.seq) <
           std::make_tuple(std::atoi(b.name.c_str() + 1), b.file, b.seq);
  });
  // Within a group: what sessionbroker is compared with first, then sessionbroker.
  auto rank = [](const Row& r) { return r.role == "floor" ? 0 : r.role == "peer" ? 1 : r.role == "base" ? 2 : 3; };
  for (auto& g : s.groups)
    std::stable_sort(g.rows.begin(), g.rows.end(), [&](const Row& a, const Row& b) { return rank(a) < rank(b); });
  return s;
}

std::string format_ns(double ns) {
  if (ns < 1e3) return fmt::format("{:.0f} ns", ns);
  if (ns < 1e6) return fmt::format("{:.{}f} µs", ns / 1e3, ns < 1e4 ? 2 : 1);
  if (ns < 1e9) return fmt::format("{:.{}f} ms", ns / 1e6, ns < 1e7 ? 2 : 1);
  return fmt::format("{:.2f} s", ns / 1e9);
}

std::string format_ratio(double r) {
  if (!std::isfinite(r) || r <= 0) return "–";
  if (r >= 0.1) return fmt::format("{:.2f}x", r);
  return fmt::format("1/{:.0f}", 1 / r);
}

}  // namespace sbreport

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: sb_report RESULTS_DIR\n");
    return 2;
  }
  auto suite = sbreport::load(argv[1]);
  if (!suite) return 1;
  std::string machine;
  if (std::ifstream in(std::string(argv[1]) + "/machine.txt"); in) {
    for (std::string line; std::getline(in, line);) machine += line + "  \n";
  }
  const std::string text =
      sbreport::render_tables(*suite, machine) + "\n" + sbreport::render_targets(*suite);
  std::fputs(text.c_str(), stdout);
  std::ofstream(std::string(argv[1]) + "/table.md") << text;
  const auto plots = sbreport::draw_plots(*suite);
  std::printf("\n%zu plots in %s/plots/\n", plots.size(), argv[1]);
  return 0;
}
