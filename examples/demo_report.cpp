#include "demo_report.hpp"

#include <algorithm>
#include <limits>
#include <set>
#include <sstream>

#include <fmt/format.h>

namespace demo {

// Lines: "inc A B C", "counts cached requested honoured lost failures",
// "grant SESSION TOKEN REQUESTED_NS GRANTED_NS", "release TOKEN NS".
std::string serialize(const Report& r) {
  std::string out = fmt::format("inc {} {} {}\ncounts {} {} {} {} {}\n", r.increments[0], r.increments[1],
                                r.increments[2], r.cached, r.revokes_requested, r.revokes_honoured, r.lost, r.failures);
  for (const auto& g : r.grants)
    out += fmt::format("grant {} {} {} {}\n", g.session, g.token, g.requested_ns, g.granted_ns);
  for (const auto& [token, ns] : r.released_ns) out += fmt::format("release {} {}\n", token, ns);
  return out;
}

std::optional<Report> parse_report(std::string_view text) {
  Report r;
  bool have_inc = false, have_counts = false;
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string kind;
    f >> kind;
    if (kind == "inc") {
      f >> r.increments[0] >> r.increments[1] >> r.increments[2];
      have_inc = true;
    } else if (kind == "counts") {
      f >> r.cached >> r.revokes_requested >> r.revokes_honoured >> r.lost >> r.failures;
      have_counts = true;
    } else if (kind == "grant") {
      GrantRecord g{};
      f >> g.session >> g.token >> g.requested_ns >> g.granted_ns;
      if (g.session < 0 || g.session >= kSessions) return std::nullopt;
      r.grants.push_back(g);
    } else if (kind == "release") {
      std::uint64_t token = 0;
      std::int64_t ns = 0;
      f >> token >> ns;
      r.released_ns[token] = ns;
    }
    if (f.fail()) return std::nullopt;
  }
  if (!have_inc || !have_counts) return std::nullopt;
  return r;
}

void WaitStats::add(std::int64_t ns) {
  ++count;
  total_ns += ns;
  max_ns = std::max(max_ns, ns);
}

Analysis analyse(const std::vector<Report>& reports) {
  struct Entry {
    GrantRecord g;
    std::size_t worker;
  };
  std::array<std::vector<Entry>, kSessions> by_session;
  std::map<std::uint64_t, std::int64_t> released;
  Analysis a;
  for (std::size_t w = 0; w < reports.size(); ++w) {
    std::set<std::uint64_t> used;
    for (const auto& g : reports[w].grants) {
      by_session[static_cast<std::size_t>(g.session)].push_back({g, w});
      used.insert(g.token);
    }
    for (const auto& [token, ns] : reports[w].released_ns) a.unused_grants += used.count(token) ? 0 : 1;
    released.insert(reports[w].released_ns.begin(), reports[w].released_ns.end());
  }
  a.waits.resize(reports.size());
  for (auto& grants : by_session) {
    std::sort(grants.begin(), grants.end(), [](const Entry& x, const Entry& y) { return x.g.token < y.g.token; });
    for (std::size_t i = 1; i < grants.size(); ++i) {
      const Entry &prev = grants[i - 1], &cur = grants[i];
      if (prev.worker == cur.worker) continue;
      ++a.handoffs;
      auto it = released.find(prev.g.token);
      const std::int64_t gone = it == released.end() ? std::numeric_limits<std::int64_t>::max() : it->second;
      if (gone <= cur.g.requested_ns) continue;  // the lock was free when this worker asked
      const std::int64_t waited = cur.g.granted_ns - cur.g.requested_ns;
      a.waits[cur.worker].add(waited);
      a.all_waits.add(waited);
    }
  }
  return a;
}

std::string format_ns(std::int64_t ns) {
  if (ns < 1'000'000) return fmt::format("{}us", ns / 1000);
  return fmt::format("{:.1f}ms", static_cast<double>(ns) / 1e6);
}

}  // namespace demo
