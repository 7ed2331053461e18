// What every sessionctl subcommand shares: exit codes, error reporting, the options all of them
// take (--store, durations) and attaching to the store.
//
// Exit codes are the tool's interface to scripts; they are listed once, in the --help footer
// (kExitCodeHelp), and every Status becomes one through exit_code_for().
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "sessionbroker/client.hpp"

namespace sessionctl {

enum Exit : int {
  kExitOk = 0,
  kExitError = 1,
  kExitUsage = 2,
  kExitNotFound = 3,
  kExitTimeout = 4,
  kExitLost = 5,
  kExitInvariant = 6,
};

inline constexpr const char* kExitCodeHelp =
    "Exit codes:\n"
    "  0  ok\n"
    "  1  error (no segment, etcd unreachable, capacity exceeded, system error, ...)\n"
    "  2  usage: bad command line, invalid or too large argument\n"
    "  3  not found: no such session or attribute\n"
    "  4  timeout: the lock was not granted before --timeout\n"
    "  5  the lock was lost (revoked by force, session destroyed) or its token is stale\n"
    "  6  check: an invariant of the store is broken (each one is named on stdout)";

inline constexpr const char* kDefaultStore = "sessionbroker";
inline constexpr std::chrono::milliseconds kDefaultTimeout{5000};

// The deferred body of the subcommand the command line chose; returns the exit code.
using Action = std::function<int()>;

// The one mapping from library errors to exit codes.
int exit_code_for(sessionbroker::ErrorCode code);

// Prints "sessionctl: <status>" on stderr and returns its exit code. REQUIRES: !st.is_ok().
int fail(const sessionbroker::Status& st);

// Adds --store ADDR (alias --segment; default "sessionbroker") to a subcommand: a segment name or
// an etcd address, etcd://HOST:PORT[,HOST:PORT...]/PREFIX.
void add_store_option(CLI::App& sub, std::string& store);
// True for an etcd address (etcd://...), well formed or not.
bool is_etcd_store(const std::string& store);
// For the commands that only a segment has (stats, watch): a usage error for an etcd address.
std::optional<int> refuse_etcd_store(const std::string& store, const std::string& command);
// Adds an option read as a duration ("200ms", "5s"); a malformed value is a usage error.
CLI::Option* add_duration_option(CLI::App& sub, const std::string& name, std::chrono::milliseconds& out,
                                  const std::string& help);

// Attaches to `store` (segment or etcd); on failure reports it and stores the exit code in `exit_code`.
std::unique_ptr<sessionbroker::Client> attach_or_report(const std::string& store, int& exit_code);

// Opens the session; with `create`, creates it when missing (whoever wins a create race, the
// session exists afterwards).
sessionbroker::Result<sessionbroker::Session> open_session(sessionbroker::Client& client, const std::string& id,
                                                           bool create);

// Commits and drops the thread lock, then gives the process lock back. A process lock already
// given back in answer to a revoke request is not an error.
sessionbroker::Status unlock_and_release(sessionbroker::Session& session, sessionbroker::SessionLock& lock,
                                         sessionbroker::Deadline deadline);

}  // namespace sessionctl
