// sessionctl: inspect and drive a sessionbroker store (segment or etcd) from the shell. See commands.hpp.
#include <cstdio>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "commands.hpp"
#include "sessionbroker/shm/corrupt.hpp"
#include "common.hpp"
#include "help.hpp"

using namespace sessionctl;

int main(int argc, char** argv) {
  CLI::App app{"sessions, attributes and locks of a sessionbroker store, from the shell", "sessionctl"};
  // Before the commands are added: they inherit the man-page layout (help.hpp).
  set_man_page(app, {
      .description =
          "Drives a sessionbroker store (a segment created by session-broker, or an etcd store): creates, "
          "lists and destroys sessions, reads and "
          "writes attributes under their locks, takes and holds locks, shows the store's state, checks its "
          "invariants, and breaks locks or evicts processes as an administrator. Each command has its own "
          "page: sessionctl COMMAND --help.\n"
          "\n"
          "create, destroy, list, get, put and lock attach to the store as a client (for the time the "
          "command runs) and take locks through the library like any application; dump, check, break-lock, "
          "expire and evict-client read and change the store without attaching (a segment mapped, or the etcd "
          "key space of docs/etcd.md).\n"
          "\n"
          "Every command takes --store ADDR (alias --segment): a segment name (default sessionbroker, the object "
          "/dev/shm/NAME) or an etcd store, etcd://HOST:PORT[,HOST:PORT...]/PREFIX. stats and watch show a "
          "segment's own counters and refuse an etcd store. Durations "
          "read like 1500us, 200ms, 5s, 2m, 1h, at most 2562047h (292 years; longer is rejected). Errors "
          "go to stderr as one line, sessionctl: <error>.\n",
      .examples =
          "Set an attribute, creating the session, then read it back:\n"
          "  $ sessionctl put user:42 cart '3 apples' --create\n"
          "  $ sessionctl get user:42 cart\n"
          "  3 apples\n"
          "\n"
          "See who holds and who waits, then take the lock from a holder that hangs:\n"
          "  $ sessionctl dump\n"
          "  $ sessionctl break-lock user:42 --yes\n"
          "\n"
          "The same on an etcd cluster:\n"
          "  $ sessionctl dump --store etcd://10.0.0.1:2379,10.0.0.2:2379/shop\n",
  });
  app.require_subcommand(1);
  Action action;
  add_session_commands(app, action);
  add_attr_commands(app, action);
  add_lock_command(app, action);
  add_dump_command(app, action);
  add_check_command(app, action);
  add_stats_command(app, action);
  add_watch_command(app, action);
  add_admin_commands(app, action);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "sessionctl: usage: {} (see sessionctl --help)\n", e.what());
    return kExitUsage;
  }
  if (!action) return kExitUsage;
  try {
    return action();
  } catch (const sessionbroker::shm::SegmentCorrupt& e) {  // a tool walking a segment it cannot trust
    return fail(sessionbroker::Status(sessionbroker::ErrorCode::kCorrupt, e.what()));
  }
}
