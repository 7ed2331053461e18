// dump: the sessions and clients of a store, read without attaching (admin_store.hpp): on a
// segment from the mapping, each session copied under its mutex for a moment; on etcd from the key
// space, each session in one consistent range. Either way it takes no client slot or lease and
// never joins a queue.
#include <cstdio>
#include <memory>
#include <string>

#include "admin_store.hpp"
#include "commands.hpp"
#include "dump_render.hpp"
#include "help.hpp"

namespace sessionctl {
namespace {

struct DumpArgs {
  std::string store;
  bool json = false;
};

int run_dump(const DumpArgs& a) {
  auto store = open_admin_store(a.store);
  if (!store) return fail(store.status());
  auto m = (*store)->dump();
  if (!m) return fail(m.status());
  const std::string text = a.json ? render_json(*m) : render_table(*m);
  std::fwrite(text.data(), 1, text.size(), stdout);
  return std::fflush(stdout) == 0 ? kExitOk : kExitError;
}

}  // namespace

void add_dump_command(CLI::App& app, Action& action) {
  auto a = std::make_shared<DumpArgs>();
  auto* sub = app.add_subcommand("dump", "show every session (holders, queue, attributes) and client (without attaching)");
  add_store_option(*sub, a->store);
  sub->add_flag("--json", a->json, "machine-readable output (shape documented in tools/sessionctl/dump_render.cpp)");
  set_man_page(*sub, {
      .description =
          "Prints every session (id, lock mode, holders with their tokens, the wait queue oldest first, "
          "attributes with their sizes) and every attached client (slot, pid, state, grants, waits), as a "
          "table or, with --json, as one JSON document. A holder marked * has been asked to release.\n"
          "\n"
          "It does not attach: it maps the segment and copies each session under that session's mutex for a "
          "moment, so it works when the client table is full and never joins a queue. Each session is "
          "consistent in itself; sessions are not frozen together.\n"
          "\n"
          "On an etcd store (--store etcd://...) it reads the key space: each session and its queue in one "
          "consistent range; holders and waiters are named by pid and process lease, clients by lease, host "
          "and pid. etcd keeps no commit count or idle clock: version and idle time are not shown (null in "
          "JSON; the shape is in tools/sessionctl/dump_render.cpp).\n",
      .examples =
          "  $ sessionctl dump\n"
          "\n"
          "The pids waiting for user:42:\n"
          "  $ sessionctl dump --json | jq '.sessions[] | select(.id == \"user:42\") | .queue[].pid'\n"
          "\n"
          "The sessions of an etcd store:\n"
          "  $ sessionctl dump --store etcd://127.0.0.1:2379/shop\n",
  });
  sub->callback([&action, a] { action = [a] { return run_dump(*a); }; });
}

}  // namespace sessionctl
