// dump: the sessions and clients of a segment, read straight from the mapping.
//
// Process safety: dump does not attach (it takes no client slot and no lock record), so it works
// when the client table is full and never disturbs the lock queues. It takes each session's mutex
// for a moment (Admin::snapshot) and the registry mutex while it copies the client table; it
// writes nothing to the segment except what the robust-mutex repair would write anyway.
#include <cstdio>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "commands.hpp"
#include "dump_render.hpp"
#include "help.hpp"
#include "segment.hpp"
#include "stats.hpp"
#include "admin.hpp"
#include "blob_store.hpp"
#include "guards.hpp"

namespace sessionctl {
namespace {

namespace detail = sessionbroker::detail;
namespace shm = sessionbroker::shm;

struct DumpArgs {
  std::string segment;
  bool json = false;
};

std::vector<ClientRow> copy_clients(detail::Segment& seg) {
  std::vector<ClientRow> rows;
  auto guard = detail::registry_guard(seg);  // attach/detach/reclaim hold it: a slot is seen whole
  for (std::uint32_t i = 0; i < seg.caps().max_clients; ++i) {
    const auto& c = seg.client(i);
    const auto state = shm::state(c);
    if (state == shm::ClientState::kFree) continue;
    const auto counts = detail::counters_since_attach(seg, i);
    const auto at = [&](shm::Counter k) { return counts[static_cast<std::size_t>(k)]; };
    rows.push_back({i, c.pid, state, at(shm::Counter::kGrants), at(shm::Counter::kHandoffs) + at(shm::Counter::kTimeouts)});
  }
  return rows;
}

DumpModel collect(detail::Segment& seg, const std::string& name) {
  DumpModel m;
  m.segment = name;
  const std::uint32_t slots = seg.caps().max_sessions;
  detail::Admin admin(seg);
  for (std::uint32_t slot = 0; slot < slots; ++slot)
    if (auto snap = admin.snapshot(slot)) m.sessions.push_back(std::move(*snap));
  m.clients = copy_clients(seg);
  m.free_blocks = detail::BlobStore(seg).free_blocks();
  m.next_token = shm::load(seg.header().next_token, std::memory_order_relaxed);
  return m;
}

int run_dump(const DumpArgs& a) {
  auto seg = detail::Segment::open(a.segment);
  if (!seg) return fail(seg.status());
  const DumpModel m = collect(**seg, a.segment);
  const std::string text = a.json ? render_json(m) : render_table(m);
  std::fwrite(text.data(), 1, text.size(), stdout);
  return std::fflush(stdout) == 0 ? kExitOk : kExitError;
}

}  // namespace

void add_dump_command(CLI::App& app, Action& action) {
  auto a = std::make_shared<DumpArgs>();
  auto* sub = app.add_subcommand("dump", "show every session (holders, queue, attributes) and client (without attaching)");
  add_segment_option(*sub, a->segment);
  sub->add_flag("--json", a->json, "machine-readable output (shape documented in tools/sessionctl/dump_render.cpp)");
  set_man_page(*sub, {
      .description =
          "Prints every session (id, lock mode, holders with their tokens, the wait queue oldest first, "
          "attributes with their sizes) and every attached client (slot, pid, state, grants, waits), as a "
          "table or, with --json, as one JSON document. A holder marked * has been asked to release.\n"
          "\n"
          "It does not attach: it maps the segment and copies each session under that session's mutex for a "
          "moment, so it works when the client table is full and never joins a queue. Each session is "
          "consistent in itself; sessions are not frozen together.\n",
      .examples =
          "  $ sessionctl dump\n"
          "\n"
          "The pids waiting for user:42:\n"
          "  $ sessionctl dump --json | jq '.sessions[] | select(.id == \"user:42\") | .queue[].pid'\n",
  });
  sub->callback([&action, a] { action = [a] { return run_dump(*a); }; });
}

}  // namespace sessionctl
