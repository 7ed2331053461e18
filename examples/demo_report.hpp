// What a demo worker tells the parent when it is done, and how the parent adds it up.
//
// Workers send their Report as text over a pipe (one record per line). The parent orders every
// session's grants by token (the store hands tokens out in grant order, from one counter), so it
// can tell handoffs (consecutive grants to different workers) and which of them were waits (the
// new holder asked before the previous one had given the lock back).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace demo {

inline constexpr int kSessions = 3;

// One process-level grant: the lock() call that had to get the session lock from the store (as
// opposed to one served by the lock this process already held). Times: steady clock, which is
// CLOCK_MONOTONIC and so comparable between processes.
struct GrantRecord {
  int session;
  std::uint64_t token;
  std::int64_t requested_ns, granted_ns;
};

struct Report {
  std::array<int, kSessions> increments{};      // committed increments per session
  std::vector<GrantRecord> grants;
  std::map<std::uint64_t, std::int64_t> released_ns;  // token -> when the process gave it back
  int cached = 0;                               // lock() calls served by the cached process lock
  int revokes_requested = 0, revokes_honoured = 0, lost = 0, failures = 0;
};

std::string serialize(const Report& r);
std::optional<Report> parse_report(std::string_view text);

struct WaitStats {
  int count = 0;
  std::int64_t total_ns = 0, max_ns = 0;
  void add(std::int64_t ns);
};

struct Analysis {
  int handoffs = 0;
  // Process locks given back before any thread of the process used them (seen as released tokens
  // that no lock() call returned): grants wasted in answer to a revoke request.
  int unused_grants = 0;
  std::vector<WaitStats> waits;  // per worker
  WaitStats all_waits;
};

Analysis analyse(const std::vector<Report>& reports);

// "35us" or "2.1ms".
std::string format_ns(std::int64_t ns);

}  // namespace demo
