// The Markdown tables: one per group, sessionbroker's rows divided by every other row of the same
// group (measured the same way, in the same run); then issue 4's targets against those ratios.
// Targets are reported, never enforced: a slow shared VM must not fail a build.
#include <algorithm>
#include <functional>
#include <set>

#include <fmt/format.h>

#include "report.hpp"

namespace sbreport {
namespace {

std::string shown_label(const Row& r) { return r.is_sb() ? "**" + r.label + "**" : r.label; }

std::vector<const Row*> sb_rows(const Group& g) {
  std::vector<const Row*> out;
  for (const auto& r : g.rows)
    if (r.is_sb() && r.param.empty()) out.push_back(&r);
  return out;
}

std::string format_value(double v, const std::string& unit) {
  if (unit == "ops/s") return v >= 1e6 ? fmt::format("{:.2f} M", v / 1e6) : fmt::format("{:.1f} k", v / 1e3);
  if (unit == "cs/op") return fmt::format("{:.3f}", v);
  return fmt::format("{:.0f} {}", v, unit);
}

std::string latency_table(const Group& g) {
  const auto sbs = sb_rows(g);
  std::string out = "| system | p50 | p99 | n |";
  std::string rule = "|---|---:|---:|---:|";
  for (const Row* s : sbs) {
    out += fmt::format(" `{}` ÷ row |", s->id);
    rule += "---:|";
  }
  out += "\n" + rule + "\n";
  for (const auto& r : g.rows) {
    out += fmt::format("| {} | {} | {} | {} |", shown_label(r), format_ns(r.p50), format_ns(r.p99), r.n);
    for (const Row* s : sbs) out += fmt::format(" {} |", s == &r ? std::string() : format_ratio(s->p50 / r.p50));
    out += "\n";
  }
  return out;
}

std::string value_table(const Group& g) {
  const auto sbs = sb_rows(g);
  std::string out = "| system | value |", rule = "|---|---:|";
  for (const Row* s : sbs) {
    out += fmt::format(" `{}` ÷ row |", s->id);
    rule += "---:|";
  }
  out += "\n" + rule + "\n";
  for (const auto& r : g.rows) {
    out += fmt::format("| {} | {} |", shown_label(r), format_value(r.value, r.unit));
    for (const Row* s : sbs) out += fmt::format(" {} |", s == &r ? std::string() : format_ratio(s->value / r.value));
    out += "\n";
  }
  return out;
}

// Throughput (or any value by process count): systems down, process counts across, then each
// sessionbroker row ÷ each other row per count.
std::string pivot_table(const Group& g) {
  std::vector<std::string> ids, params, sb_ids;
  for (const auto& r : g.rows) {
    if (std::find(ids.begin(), ids.end(), r.id) == ids.end()) ids.push_back(r.id);
    if (std::find(params.begin(), params.end(), r.param) == params.end()) params.push_back(r.param);
    if (r.is_sb() && std::find(sb_ids.begin(), sb_ids.end(), r.id) == sb_ids.end()) sb_ids.push_back(r.id);
  }
  std::sort(params.begin(), params.end(), [](const std::string& a, const std::string& b) { return std::stoi(a) < std::stoi(b); });
  std::string out = "| " + g.rows.front().unit + " | ", rule = "|---|";
  for (const auto& p : params) {
    out += fmt::format("{} proc |", p);
    rule += "---:|";
  }
  out += "\n" + rule + "\n";
  for (const auto& id : ids) {
    const Row* first = g.find(id, params.front());
    out += fmt::format("| {} |", first ? shown_label(*first) : id);
    for (const auto& p : params) {
      const Row* r = g.find(id, p);
      out += fmt::format(" {} |", r ? format_value(r->value, r->unit) : "–");
    }
    out += "\n";
  }
  if (g.rows.front().unit != "ops/s") return out;  // counts per operation: the rows say it all
  for (const auto& sb : sb_ids)
    for (const auto& id : ids) {
      if (std::find(sb_ids.begin(), sb_ids.end(), id) != sb_ids.end()) continue;
      out += fmt::format("| `{}` ÷ `{}` |", sb, id);
      for (const auto& p : params) {
        const Row *s = g.find(sb, p), *o = g.find(id, p);
        out += fmt::format(" {} |", s && o && o->value > 0 ? format_ratio(s->value / o->value) : "–");
      }
      out += "\n";
    }
  return out;
}

}  // namespace

std::string render_tables(const Suite& s, const std::string& machine) {
  std::string out = fmt::format(
      "# sessionbroker bench results ({})\n\n{}\n"
      "`X ÷ row`: sessionbroker row X's p50 (or value) divided by that row's, from the same run. Below 1, "
      "sessionbroker is faster; `1/N` means N times faster. Throughput: higher is better.\n",
      s.dir, machine);
  for (const auto& g : s.groups) {
    out += fmt::format("\n### {}\n`{}`\n\n", g.title, g.name);
    const bool pivot = std::any_of(g.rows.begin(), g.rows.end(), [](const Row& r) { return !r.param.empty(); });
    if (pivot) out += pivot_table(g);
    else if (!g.rows.empty() && g.rows.front().unit == "ns") out += latency_table(g);
    else out += value_table(g);
    for (const auto& r : g.rows)
      if (!r.note.empty() && r.unit != "ns") out += fmt::format("\n{}: {}\n", r.id, r.note);
  }
  if (!s.skipped.empty()) {
    out += "\nNot measured:\n";
    for (const auto& line : s.skipped) out += "- " + line + "\n";
  }
  return out;
}

std::string render_targets(const Suite& s) {
  // Each target: what it says, then the measured figure (nullopt when its rows are missing).
  struct Target {
    std::string text;
    double limit;
    bool at_most;  // measured <= limit, else measured >= limit
    std::function<std::optional<double>()> measure;
    std::string unit = "x";
  };
  auto p50 = [&](const std::string& group, const std::string& id, const std::string& param = {}) -> std::optional<double> {
    const Group* g = s.find(group);
    const Row* r = g ? g->find(id, param) : nullptr;
    if (!r || r->metric() <= 0) return std::nullopt;
    return r->metric();
  };
  auto ratio = [&](const std::string& group, const std::string& a, const std::string& b) -> std::function<std::optional<double>()> {
    return [=]() -> std::optional<double> {
      auto x = p50(group, a), y = p50(group, b);
      if (!x || !y) return std::nullopt;
      return *x / *y;
    };
  };
  std::vector<Target> targets = {
      {"1. cached re-acquire within 3x of the bare futex lock+unlock", 3, true, ratio("s1.cached_reacquire", "sb.cached_reacquire", "floor.futex")},
      {"2. acquire+release (Store) within 2x of the robust pthread mutex", 2, true, ratio("s2.uncontended", "sb.store", "floor.robust_mutex")},
      {"2. acquire+release (public API) within 2x of the robust pthread mutex", 2, true, ratio("s2.uncontended", "sb.api", "floor.robust_mutex")},
      {"2. 1000x faster than the Redis lock, TCP (Redis ÷ Store)", 1000, false, ratio("s2.uncontended", "peer.redis_tcp", "sb.store")},
      {"2. 1000x faster than the Redis lock, unix socket (Redis ÷ Store)", 1000, false, ratio("s2.uncontended", "peer.redis_unix", "sb.store")},
      {"5. acquire+release at 1M sessions within 1.5x of 1K", 1.5, true, ratio("s5.acquire", "sb.n1M", "sb.n1K")},
      {"5. open+acquire+release at 1M sessions within 1.5x of 1K", 1.5, true, ratio("s5.open_acquire", "sb.n1M", "sb.n1K")},
      {"5. disjoint throughput grows up to the core count (2 proc ÷ 1 proc)", 1, false,
       [&]() -> std::optional<double> {
         auto a = p50("s5.tput.disjoint", "sb", "2"), b = p50("s5.tput.disjoint", "sb", "1");
         if (!a || !b) return std::nullopt;
         return *a / *b;
       }},
      {"6. broker up: next grant within 2x of the pidfd floor", 2, true, ratio("s6.recovery", "sb.broker_up", "floor.pidfd")},
      {"6. broker down: next grant under 1 s (p99)", 1e9, true,
       [&]() -> std::optional<double> {
         const Group* g = s.find("s6.recovery");
         const Row* r = g ? g->find("sb.broker_down") : nullptr;
         if (!r || r->n == 0) return std::nullopt;
         return r->p99;
       },
       "ns"},
  };
  // Scenario 3's targets at every process count measured (the issue asks for 2, then 4 and 8).
  auto at = targets.begin() + 5;
  for (const char* procs : {"2", "4", "8"}) {
    const std::string g = std::string("s3.handoff.") + procs + "p", n = std::string(" (") + procs + " processes)";
    const std::vector<Target> s3 = {
        {"3. handoff within 2x of the futex ping-pong" + n, 2, true, ratio(g, "sb.revoke_handoff", "floor.futex_ring")},
        {"3. 3x faster than Redis BLPOP, TCP" + n, 3, false, ratio(g, "peer.redis_blpop_tcp", "sb.revoke_handoff")},
        {"3. 3x faster than Redis BLPOP, unix" + n, 3, false, ratio(g, "peer.redis_blpop_unix", "sb.revoke_handoff")},
        {"3. 100x faster than the phpredis retry loop, TCP" + n, 100, false, ratio(g, "peer.redis_retry_tcp", "sb.revoke_handoff")},
        {"3. 100x faster than the phpredis retry loop, unix" + n, 100, false, ratio(g, "peer.redis_retry_unix", "sb.revoke_handoff")},
    };
    at = targets.insert(at, s3.begin(), s3.end()) + static_cast<std::ptrdiff_t>(s3.size());
  }
  // Issue 13: the handoff a user meets and the full cycle. Throughput ratios (sb ÷ flock: higher
  // is better), so "time per op at most 1.0x flock's" is "throughput at least 1.0x".
  auto tput = [&](const std::string& id, const std::string& procs) -> std::function<std::optional<double>()> {
    return [=]() -> std::optional<double> {
      auto a = p50("s8.rmw.tput", id, procs), b = p50("s8.rmw.tput", "peer.flock", procs);
      if (!a || !b) return std::nullopt;
      return *a / *b;
    };
  };
  targets.push_back({"13. hot read-modify-write, 2 processes, with release: throughput at least 1.0x flock's", 1,
                     false, tput("sb", "2")});
  targets.push_back({"13. hot read-modify-write, 2 processes, lock cached: throughput at least 1.0x flock's", 1,
                     false, tput("sb.cached", "2")});
  for (const char* procs : {"8", "64"})
    for (const char* id : {"sb", "sb.cached"})
      targets.push_back({fmt::format("13. hot read-modify-write, {} processes, `{}`: throughput at least 0.5x flock's",
                                     procs, id),
                         0.5, false, tput(id, procs)});
  targets.push_back({"13. uncontended full cycle (API) at most 0.3x flock", 0.3, true,
                     ratio("s8.cycle", "sb.api", "peer.flock")});
  targets.push_back({"13. uncontended full cycle (API) at most 6x a robust mutex pair", 6, true,
                     ratio("s8.cycle", "sb.api", "floor.robust_mutex")});
  std::string out = "## Targets of issues 4 and 13 (reported, not enforced)\n\n| target | measured | |\n|---|---:|---|\n";
  for (const auto& t : targets) {
    const auto m = t.measure();
    if (!m) {
      out += fmt::format("| {} | not measured | |\n", t.text);
      continue;
    }
    const bool met = t.at_most ? *m <= t.limit : *m >= t.limit;
    const std::string shown = t.unit == "ns" ? format_ns(*m) : fmt::format("{:.{}f}x", *m, *m < 10 ? 2 : 0);
    out += fmt::format("| {} | {} | {} |\n", t.text, shown, met ? "met" : "**missed**");
  }
  return out;
}

}  // namespace sbreport
