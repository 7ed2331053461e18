// sb_report: reads the suite's result files and prints the comparison table, the targets of
// issue 4 against the measured ratios, and draws the plots. Pure presentation: it measures nothing.
//
// Model: a result file (DIR/<program>.json) holds results; results with the same `group` were
// measured the same way in the same run, so any two of them may be divided. Roles: "sb" rows are
// sessionbroker, "floor"/"peer" rows are what it is compared with, "base" rows are sessionbroker
// at a reference setting (scenario 5's 1K sessions).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace sbreport {

struct Row {
  std::string id, role, label, unit, note, param, quantiles_file;
  double p50 = 0, p99 = 0, value = 0;
  std::size_t n = 0;
  bool is_sb() const { return role == "sb"; }
  double metric() const { return unit == "ns" ? p50 : value; }
};

struct Group {
  std::string name, title;
  std::string file;  // the result file it came from, and its order there: the display order
  int seq = 0;
  std::vector<Row> rows;  // in file order
  const Row* find(const std::string& id, const std::string& param = {}) const;
};

struct Suite {
  std::string dir;
  std::vector<Group> groups;  // ordered by scenario number, then name
  std::vector<std::string> skipped;
  const Group* find(const std::string& name) const;
};

// Loads every DIR/*.json that is a suite result file. Returns nullopt (and says why) if none.
std::optional<Suite> load(const std::string& dir);

// "12.3 µs", "845 ns", "1.23 ms"
std::string format_ns(double ns);
// sessionbroker / other as "0.52x" or, far below 1, "1/476" (476 times faster).
std::string format_ratio(double r);

// The Markdown tables and the targets section.
// `machine` (Markdown, may be empty) describes where the suite ran.
std::string render_tables(const Suite& s, const std::string& machine);
std::string render_targets(const Suite& s);
// Writes DIR/plots/<group>.gp and runs gnuplot on each; returns the PNG paths made.
std::vector<std::string> draw_plots(const Suite& s);

}  // namespace sbreport
