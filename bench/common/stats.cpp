#include "stats.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <numeric>

#include <nlohmann/json.hpp>

namespace sbbench {
namespace {

double at_quantile(const std::vector<double>& sorted, double q) {
  const auto i = static_cast<std::size_t>(std::floor(q * static_cast<double>(sorted.size() - 1) + 0.5));
  return sorted[std::min(i, sorted.size() - 1)];
}

std::string file_safe(std::string s) {
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') c = '_';
  return s;
}

}  // namespace

Summary summarize(std::vector<double>& v) {
  Summary s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.n = v.size();
  s.min = v.front();
  s.max = v.back();
  s.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  s.p50 = at_quantile(v, 0.50);
  s.p90 = at_quantile(v, 0.90);
  s.p99 = at_quantile(v, 0.99);
  s.p999 = at_quantile(v, 0.999);
  return s;
}

void ResultSink::latency(const std::string& group, const std::string& group_title, const std::string& id,
                         const std::string& role, const std::string& label, std::vector<double> samples,
                         const std::string& note) {
  note_group(group);
  Result r{group, group_title, id, role, label, "ns", summarize(samples), 0, {}, note, {}};
  if (!samples.empty()) {
    r.quantiles_file = "samples/" + file_safe(group + "." + id) + ".dat";
    std::ofstream out(dir_ + "/" + r.quantiles_file);
    out << "# quantile latency_ns (" << samples.size() << " samples): " << label << "\n";
    for (int i = 0; i <= 1000; ++i) out << i / 1000.0 << ' ' << at_quantile(samples, i / 1000.0) << '\n';
  }
  results_[group + "\n" + id] = std::move(r);
}

void ResultSink::value(const std::string& group, const std::string& group_title, const std::string& id,
                       const std::string& role, const std::string& label, double value, const std::string& unit,
                       const std::string& note, const std::string& param) {
  note_group(group);
  results_[group + "\n" + id + "\n" + param] = Result{group, group_title, id, role, label, unit, {}, value, {}, note, param};
}

void ResultSink::skipped(const std::string& group, const std::string& id, const std::string& why) {
  const std::string line = group + " " + id + ": " + why;
  if (std::find(skipped_.begin(), skipped_.end(), line) == skipped_.end()) skipped_.push_back(line);
}

bool ResultSink::write() const {
  nlohmann::json j;
  j["sbbench"] = 1;
  j["program"] = program_;
  j["results"] = nlohmann::json::array();
  for (const auto& [key, r] : results_) {
    nlohmann::json e{{"group", r.group}, {"group_title", r.group_title}, {"id", r.id}, {"role", r.role},
                     {"label", r.label}, {"unit", r.unit}, {"seq", group_seq_.at(r.group)}};
    if (r.unit == "ns") {
      e["n"] = r.lat.n;
      e["min"] = r.lat.min;
      e["mean"] = r.lat.mean;
      e["p50"] = r.lat.p50;
      e["p90"] = r.lat.p90;
      e["p99"] = r.lat.p99;
      e["p999"] = r.lat.p999;
      e["max"] = r.lat.max;
      e["quantiles_file"] = r.quantiles_file;
    } else {
      e["value"] = r.value;
    }
    if (!r.note.empty()) e["note"] = r.note;
    if (!r.param.empty()) e["param"] = r.param;
    j["results"].push_back(std::move(e));
  }
  j["skipped"] = skipped_;
  std::ofstream out(dir_ + "/" + program_ + ".json");
  out << j.dump(2) << '\n';
  return static_cast<bool>(out);
}

}  // namespace sbbench
