#include "sampler.hpp"

namespace sbbench {

InprocEnv& env() {
  static InprocEnv e;
  return e;
}

void Sampler::report(const Row& row, const std::vector<std::pair<std::string, std::string>>& also) {
  st_.SetItemsProcessed(static_cast<std::int64_t>(st_.iterations()) * batch_);
  if (samples_.empty()) return;
  std::vector<double> sorted = samples_;
  const Summary s = summarize(sorted);
  st_.counters["p50_ns"] = s.p50;
  st_.counters["p99_ns"] = s.p99;
  const std::string note = batch_ > 1 ? "per-op time of batches of " + std::to_string(batch_) : "";
  env().sink->latency(row.group, row.group_title, row.id, row.role, row.label, samples_, note);
  for (const auto& [group, title] : also) env().sink->latency(group, title, row.id, row.role, row.label, samples_, note);
}

bool need_redis(benchmark::State& st, const Row& row) {
  if (env().redis) return true;
  env().sink->skipped(row.group, row.id, "Redis unavailable (bench/setup.sh installs redis-server and libhiredis-dev)");
  st.SkipWithError("Redis unavailable");
  return false;
}

}  // namespace sbbench
