// Latency statistics and the result file every bench program writes.
//
// A result is one measured thing (a scenario of sessionbroker, or a peer) inside a group of things
// measured the same way, so that the report can put them side by side and take ratios:
//   group  "s3.handoff.2p"    one row of the scenario list at one parameter
//   role   "sb" | "peer" | "floor"
//   id     "sb.revoke_handoff", "peer.redis_blpop_unix", ... (unique within the group)
// Latency results keep their sorted samples as a 1001-point quantile file beside the JSON (for the
// plots); value results (throughput, bytes) carry one number.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace sbbench {

struct Summary {
  std::size_t n = 0;
  double min = 0, mean = 0, p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0;
};

// Sorts `v` in place and summarises it. An empty vector gives n == 0.
Summary summarize(std::vector<double>& v);

struct Result {
  std::string group, group_title, id, role, label;
  std::string unit;  // "ns" for latencies, otherwise the unit of `value`
  Summary lat;       // when unit == "ns"
  double value = 0;  // when unit != "ns"
  std::string quantiles_file;  // relative to the output directory; latencies only
  std::string note;  // how it was measured, when the label cannot say it
  std::string param; // value results measured at several settings (processes): the setting
};

// Collects results and writes them as DIR/<program>.json. Adding an id twice replaces the first
// (Google Benchmark calls a benchmark several times while it sizes the run; the last call wins).
class ResultSink {
 public:
  ResultSink(std::string dir, std::string program) : dir_(std::move(dir)), program_(std::move(program)) {}
  const std::string& dir() const { return dir_; }

  // Summarises `samples` (ns, any order) and writes its quantile file.
  void latency(const std::string& group, const std::string& group_title, const std::string& id,
               const std::string& role, const std::string& label, std::vector<double> samples,
               const std::string& note = {});
  void value(const std::string& group, const std::string& group_title, const std::string& id,
             const std::string& role, const std::string& label, double value, const std::string& unit,
             const std::string& note = {}, const std::string& param = {});
  // Notes something that could not be measured (for example Redis missing); the report shows it.
  void skipped(const std::string& group, const std::string& id, const std::string& why);
  bool write() const;

 private:
  void note_group(const std::string& group) { group_seq_.emplace(group, static_cast<int>(group_seq_.size())); }
  std::string dir_, program_;
  std::map<std::string, Result> results_;  // by group + id, so output order is stable
  std::map<std::string, int> group_seq_;   // order in which groups were first reported
  std::vector<std::string> skipped_;
};

}  // namespace sbbench
