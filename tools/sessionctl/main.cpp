// sessionctl: inspect and drive a sessionbroker segment from the shell. See commands.hpp.
#include <cstdio>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "commands.hpp"
#include "common.hpp"

using namespace sessionctl;

int main(int argc, char** argv) {
  CLI::App app{
      "sessionctl: sessions, attributes and locks of a sessionbroker segment, from the shell.\n"
      "Durations read like 1500us, 200ms, 5s, 2m, 1h.",
      "sessionctl"};
  app.footer(kExitCodeHelp);
  app.require_subcommand(1);
  Action action;
  add_session_commands(app, action);
  add_attr_commands(app, action);
  add_lock_command(app, action);
  add_dump_command(app, action);
  add_check_command(app, action);
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
  return action ? action() : kExitUsage;
}
