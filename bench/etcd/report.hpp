// The table sb_etcd prints: one row per scenario, sessionbroker beside its peer of the same run,
// p50/p99 of each and the ratio of the p50s (sessionbroker / peer: below 1 is faster). Every
// summary also goes to the ResultSink (DIR/sb_etcd.json, quantiles in DIR/samples/).
#pragma once

#include <string>
#include <vector>

#include "stats.hpp"

namespace sbetcd {

struct Side {
  std::string label;
  std::vector<double> ns;  // samples, any order; empty when the measurement failed
};

class Report {
 public:
  explicit Report(sbbench::ResultSink& sink) : sink_(sink) {}
  void add(const std::string& group, const std::string& title, Side sb, Side peer);
  std::string markdown() const;
  // False when any measurement gave no samples.
  bool complete() const { return complete_; }

 private:
  struct Row {
    std::string title, sb_label, peer_label;
    sbbench::Summary sb, peer;
  };
  sbbench::ResultSink& sink_;
  std::vector<Row> rows_;
  bool complete_ = true;
};

// "812 ns", "1.24 µs", "3.10 ms", "2.01 s".
std::string format_ns(double ns);

}  // namespace sbetcd
