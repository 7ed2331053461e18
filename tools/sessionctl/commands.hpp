// Subcommand groups. Each add_* function registers its subcommands on `app`; when the command line
// picks one of them, its CLI11 callback stores the work to do in `action`, which main() runs after
// parsing (so parse errors never leave half-done work behind).
#pragma once

#include <CLI/CLI.hpp>

#include "common.hpp"

namespace sessionctl {

void add_session_commands(CLI::App& app, Action& action);  // create, destroy, list
void add_attr_commands(CLI::App& app, Action& action);     // get, put
void add_lock_command(CLI::App& app, Action& action);      // lock
void add_dump_command(CLI::App& app, Action& action);      // dump
void add_check_command(CLI::App& app, Action& action);     // check
void add_stats_command(CLI::App& app, Action& action);     // stats
void add_watch_command(CLI::App& app, Action& action);     // watch
void add_admin_commands(CLI::App& app, Action& action);    // break-lock, expire, evict-client

}  // namespace sessionctl
