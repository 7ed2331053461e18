// check: verifies the invariants of shm_layout/LAYOUT.md (I1-I12) on a live system (see
// libsession/src/check.hpp) and prints a readable report. Exit 0 when all hold; kExitInvariant
// naming each broken one.
//
// Process safety: like dump, check does not attach; it takes each structure's mutex in turn
// (registry, each session, the allocator), so clients keep working while it runs.
#include <string>

#include <fmt/format.h>

#include "check.hpp"
#include "commands.hpp"
#include "help.hpp"
#include "segment.hpp"

namespace sessionctl {
namespace {

namespace detail = sessionbroker::detail;

int run_check(const std::string& segment) {
  auto seg = detail::Segment::open(segment);
  if (!seg) return fail(seg.status());
  const detail::CheckReport report = detail::check_segment(**seg);
  fmt::print("segment {}: {} sessions, {} clients, {} holders, {} waiters; blocks: {} in blobs, {} pending, {} free of {}\n",
             segment, report.sessions, report.clients, report.holders, report.waiters, report.blocks_used,
             report.blocks_pending, report.blocks_free, (*seg)->caps().block_count);
  for (const auto& note : report.notes) fmt::print("note: {}\n", note);
  for (const auto& v : report.violations) fmt::print("VIOLATED {}: {}\n", v.invariant, v.detail);
  if (report.ok()) {
    fmt::print("all invariants hold\n");
    return kExitOk;
  }
  fmt::print(stderr, "sessionctl: {} invariant violation(s)\n", report.violations.size());
  return kExitInvariant;
}

}  // namespace

void add_check_command(CLI::App& app, Action& action) {
  auto* sub = app.add_subcommand("check", "verify every invariant of a live segment (does not attach)");
  auto segment = std::make_shared<std::string>();
  add_segment_option(*sub, *segment);
  set_man_page(*sub, {
      .description =
          "Verifies every invariant of the segment's structure (holder lists and lock modes, tokens, FIFO "
          "queues, the session index, attribute block chains and the free list; not history, such as a lost "
          "commit) while clients keep working, and prints a summary line, notes "
          "(such as an evicted client not yet detached), one VIOLATED line per broken invariant naming "
          "it by its number in LAYOUT.md (I1 to I12), "
          "and finally all invariants hold when none is broken.\n"
          "\n"
          "It does not attach: it takes each structure's mutex in turn (the registry, each session, the "
          "allocator), never two at once, so no client waits on it for long.\n",
      .exit_status = "6 when an invariant is broken.",
      .examples =
          "  $ sessionctl check --segment shop\n",
  });
  sub->callback([&action, segment] { action = [segment] { return run_check(*segment); }; });
}

}  // namespace sessionctl
