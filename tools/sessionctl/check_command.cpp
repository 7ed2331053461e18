// check: verifies a store's invariants on a live system and prints a readable report. Exit 0 when
// all hold; kExitInvariant naming each broken one. On a segment: shm_layout/LAYOUT.md (I1-I12, see
// libsession/src/check.hpp); on etcd: docs/etcd.md "Invariants" (E1-E7, etcd_check.cpp).
//
// Process safety: check does not attach. On a segment it takes each structure's mutex in turn
// (registry, each session, the allocator); on etcd it reads the key space at one revision. Clients
// keep working while it runs.
#include <string>

#include <fmt/format.h>

#include "admin_store.hpp"
#include "commands.hpp"
#include "help.hpp"

namespace sessionctl {
namespace {

int run_check(const std::string& address) {
  auto store = open_admin_store(address);
  if (!store) return fail(store.status());
  auto report = (*store)->check();
  if (!report) return fail(report.status());
  fmt::print("{}\n", report->summary);
  for (const auto& note : report->notes) fmt::print("note: {}\n", note);
  for (const auto& v : report->violations) fmt::print("VIOLATED {}: {}\n", v.invariant, v.detail);
  if (report->violations.empty()) {
    fmt::print("all invariants hold\n");
    return kExitOk;
  }
  fmt::print(stderr, "sessionctl: {} invariant violation(s)\n", report->violations.size());
  return kExitInvariant;
}

}  // namespace

void add_check_command(CLI::App& app, Action& action) {
  auto* sub = app.add_subcommand("check", "verify every invariant of a live store (does not attach)");
  auto store = std::make_shared<std::string>();
  add_store_option(*sub, *store);
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
          "allocator), never two at once, so no client waits on it for long.\n"
          "\n"
          "On an etcd store (--store etcd://...) it reads the whole key space at one revision and verifies the "
          "invariants of docs/etcd.md section Invariants (E1 to E7: key shapes, session values, queue values "
          "S or X, every queue key on the process lease its name says and registered by a client key, every "
          "lease live, no queue key older than its session key); a queue key left over by a session that "
          "expired under it is a note.\n",
      .exit_status = "6 when an invariant is broken.",
      .examples =
          "  $ sessionctl check --store shop\n"
          "  $ sessionctl check --store etcd://127.0.0.1:2379/shop\n",
  });
  sub->callback([&action, store] { action = [store] { return run_check(*store); }; });
}

}  // namespace sessionctl
