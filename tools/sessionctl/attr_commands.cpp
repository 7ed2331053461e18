// get, put: one attribute under its own lock (shared to read, exclusive to write).
#include <cstdio>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "commands.hpp"
#include "help.hpp"

namespace sessionctl {
namespace {

using sessionbroker::ErrorCode;
using sessionbroker::in;
using sessionbroker::Mode;
using sessionbroker::Status;

struct GetArgs {
  std::string segment, session, attr;
  std::chrono::milliseconds timeout = kDefaultTimeout;
};

struct PutArgs {
  std::string segment, session, attr, value;
  std::chrono::milliseconds timeout = kDefaultTimeout;
  bool create = false;
};

Status no_attribute(const std::string& session, const std::string& attr) {
  return Status(ErrorCode::kNotFound, fmt::format("session '{}' has no attribute '{}'", session, attr));
}

int run_get(const GetArgs& a) {
  int rc = kExitOk;
  auto client = attach_or_report(a.segment, rc);
  if (!client) return rc;
  auto session = client->open(a.session);
  if (!session) return fail(session.status());
  const auto deadline = in(a.timeout);
  auto lock = session->lock({a.attr}, Mode::kShared, deadline);
  if (!lock) return fail(lock.status());
  auto value = lock->get(a.attr);
  // Read first, release second: the value printed is the one committed while we held the lock.
  if (Status st = unlock_and_release(*session, *lock, deadline); !st) return fail(st);
  if (!value) return fail(value.status());
  if (!*value) return fail(no_attribute(a.session, a.attr));
  const std::string& v = **value;
  std::fwrite(v.data(), 1, v.size(), stdout);
  std::fputc('\n', stdout);
  return std::fflush(stdout) == 0 ? kExitOk : kExitError;
}

int run_put(const PutArgs& a) {
  int rc = kExitOk;
  auto client = attach_or_report(a.segment, rc);
  if (!client) return rc;
  auto session = open_session(*client, a.session, a.create);
  if (!session) return fail(session.status());
  const auto deadline = in(a.timeout);
  auto lock = session->lock({a.attr}, Mode::kExclusive, deadline);
  if (!lock) return fail(lock.status());
  if (Status st = lock->put(a.attr, a.value); !st) return fail(st);
  // unlock() commits: a zero exit status means the value is visible to every process.
  if (Status st = unlock_and_release(*session, *lock, deadline); !st) return fail(st);
  return kExitOk;
}

void add_get(CLI::App& app, Action& action) {
  auto a = std::make_shared<GetArgs>();
  auto* sub = app.add_subcommand("get", "print an attribute's committed value (read under a shared lock)");
  add_store_option(*sub, a->segment);
  sub->add_option("SESSION", a->session, "session id")->required();
  sub->add_option("ATTR", a->attr, "attribute name")->required();
  add_duration_option(*sub, "--timeout", a->timeout, "how long to wait for the shared lock (default 5s)");
  set_man_page(*sub, {
      .description =
          "Prints the committed value of attribute ATTR of SESSION, followed by a newline, exactly as stored "
          "(values are bytes; nothing is escaped).\n"
          "\n"
          "Reads under a shared lock on the session, so it waits behind an exclusive holder (which is asked to "
          "release) but not behind other readers; it gives the lock back before printing. The value printed "
          "is the one committed when the lock was granted.\n",
      .exit_status = "3 when there is no such session or attribute (nothing is printed on stdout). 4 when the "
                     "shared lock was not granted within --timeout.",
      .examples =
          "  $ sessionctl get user:42 cart\n"
          "  3 apples\n",
  });
  sub->callback([&action, a] { action = [a] { return run_get(*a); }; });
}

void add_put(CLI::App& app, Action& action) {
  auto a = std::make_shared<PutArgs>();
  auto* sub = app.add_subcommand("put", "set an attribute under an exclusive lock; exits once committed");
  add_store_option(*sub, a->segment);
  sub->add_option("SESSION", a->session, "session id")->required();
  sub->add_option("ATTR", a->attr, "attribute name")->required();
  sub->add_option("VALUE", a->value, "new value")->required();
  add_duration_option(*sub, "--timeout", a->timeout, "how long to wait for the exclusive lock (default 5s)");
  sub->add_flag("--create", a->create, "create the session if it does not exist");
  set_man_page(*sub, {
      .description =
          "Sets attribute ATTR of SESSION to VALUE: takes the session's exclusive lock (holders are asked to "
          "release; it waits up to --timeout), writes, commits and gives the lock back. Other processes see "
          "the old value or the new one, never a mix.\n"
          "\n"
          "Prints nothing. Exit status 0 means the value is committed and visible to every process.\n",
      .exit_status = "3 when there is no such session (and no --create). 2 when VALUE is larger than the "
                     "segment's --max-value. 4 when the lock was not granted within --timeout (nothing "
                     "written).",
      .examples =
          "  $ sessionctl put user:42 cart '3 apples' --create\n"
          "\n"
          "A value from a file:\n"
          "  $ sessionctl put user:42 profile \"$(cat profile.json)\"\n",
  });
  sub->callback([&action, a] { action = [a] { return run_put(*a); }; });
}

}  // namespace

void add_attr_commands(CLI::App& app, Action& action) {
  add_get(app, action);
  add_put(app, action);
}

}  // namespace sessionctl
