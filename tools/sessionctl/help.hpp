// Man-page-like --help for sessionctl and each of its commands.
//
// A command keeps its texts next to its registration and hands them to set_man_page(). Its help
// then reads, in this order:
//   NAME         "sessionctl <command> - " + the command's description() (one line: the command
//                list of `sessionctl --help` shows it too)
//   SYNOPSIS     generated from the options and positionals, so it cannot drift from them
//   DESCRIPTION  ManPage::description
//   COMMANDS     the subcommands with their one-line descriptions (sessionctl itself)
//   OPTIONS      every option, with its type, default and help string
//   EXIT STATUS  ManPage::exit_status, then the codes every command shares (kExitCodeHelp)
//   EXAMPLES     ManPage::examples
//
// Text rules, the same for the three ManPage fields: lines that do not start with a space are
// joined into paragraphs and re-wrapped to 80 columns (so a paragraph may be written as adjacent
// string literals); a blank line separates paragraphs; a line that starts with a space is kept as
// written (commands in EXAMPLES, lists).
#pragma once

#include <string>

#include <CLI/CLI.hpp>

namespace sessionctl {

// Fields may be left out of a designated initializer; an empty one leaves its section out.
struct ManPage {
  std::string description = {};  // what it does, what it prints, what locks it takes
  std::string exit_status = {};  // what the shared codes mean for this command
  std::string examples = {};     // each example: a sentence, then the command indented
};

// Gives `cmd` (sessionctl itself or one of its commands) the help laid out above. A command
// without a page of its own still gets NAME, SYNOPSIS, OPTIONS and EXIT STATUS.
void set_man_page(CLI::App& cmd, ManPage page);

}  // namespace sessionctl
