// create, destroy, list: the session table.
#include <cstdio>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "commands.hpp"
#include "help.hpp"

namespace sessionctl {
namespace {

using sessionbroker::in;

struct CreateArgs {
  std::string segment, session;
  std::chrono::milliseconds ttl{0};  // zero: the segment's default TTL
};

struct DestroyArgs {
  std::string segment, session;
  std::chrono::milliseconds timeout = kDefaultTimeout;
};

struct ListArgs {
  std::string segment;
};

int run_create(const CreateArgs& a) {
  int rc = kExitOk;
  auto client = attach_or_report(a.segment, rc);
  if (!client) return rc;
  auto session = client->create(a.session, a.ttl);
  return session ? kExitOk : fail(session.status());
}

int run_destroy(const DestroyArgs& a) {
  int rc = kExitOk;
  auto client = attach_or_report(a.segment, rc);
  if (!client) return rc;
  // Takes the exclusive lock first (holders are asked to release), so it waits up to --timeout.
  sessionbroker::Status st = client->destroy(a.session, in(a.timeout));
  return st ? kExitOk : fail(st);
}

int run_list(const ListArgs& a) {
  int rc = kExitOk;
  auto client = attach_or_report(a.segment, rc);
  if (!client) return rc;
  auto ids = client->list();
  if (!ids) return fail(ids.status());
  for (const auto& id : *ids) fmt::print("{}\n", id);
  return kExitOk;
}

void add_create(CLI::App& app, Action& action) {
  auto a = std::make_shared<CreateArgs>();
  auto* sub = app.add_subcommand("create", "create a session");
  add_store_option(*sub, a->segment);
  sub->add_option("SESSION", a->session, "session id")->required();
  add_duration_option(*sub, "--ttl", a->ttl, "idle time after which the broker expires it (default: the segment's)");
  set_man_page(*sub, {
      .description =
          "Creates an empty session named SESSION (up to 128 bytes). The broker removes it once it has been "
          "idle (no grant, release or commit) for --ttl, or for the segment's --default-ttl of session-broker.\n"
          "\n"
          "Prints nothing. Takes no lock: the session is created unlocked, at version 0.\n",
      .exit_status = "1 when the session already exists or the session table is full.",
      .examples =
          "A session that expires after 30 idle minutes:\n"
          "  $ sessionctl create user:42 --ttl 30m\n",
  });
  sub->callback([&action, a] { action = [a] { return run_create(*a); }; });
}

void add_destroy(CLI::App& app, Action& action) {
  auto a = std::make_shared<DestroyArgs>();
  auto* sub = app.add_subcommand("destroy", "destroy a session once its exclusive lock is granted");
  add_store_option(*sub, a->segment);
  sub->add_option("SESSION", a->session, "session id")->required();
  add_duration_option(*sub, "--timeout", a->timeout, "how long to wait for the exclusive lock (default 5s)");
  set_man_page(*sub, {
      .description =
          "Destroys SESSION and its attributes the polite way: it queues for the session's exclusive lock like "
          "any client, so the holders are asked to release (revoke request) and finish what they are doing, "
          "and destroys the session once the lock is granted. Requests queued behind it fail with kNotFound.\n"
          "\n"
          "Prints nothing. To remove a session without waiting for its holders, use sessionctl expire.\n",
      .exit_status = "3 when there is no such session. 4 when the lock was not granted within --timeout (the "
                     "session is left as it was).",
      .examples =
          "Destroy a session, waiting up to 30 seconds for its holders:\n"
          "  $ sessionctl destroy user:42 --timeout 30s\n",
  });
  sub->callback([&action, a] { action = [a] { return run_destroy(*a); }; });
}

void add_list(CLI::App& app, Action& action) {
  auto a = std::make_shared<ListArgs>();
  auto* sub = app.add_subcommand("list", "print the id of every session, one per line");
  add_store_option(*sub, a->segment);
  set_man_page(*sub, {
      .description =
          "Prints the id of every session of the segment, one per line, in no particular order. Takes no "
          "session lock; a session created or removed while it runs may or may not be listed.\n",
      .examples =
          "Count the sessions:\n"
          "  $ sessionctl list | wc -l\n",
  });
  sub->callback([&action, a] { action = [a] { return run_list(*a); }; });
}

}  // namespace

void add_session_commands(CLI::App& app, Action& action) {
  add_create(app, action);
  add_destroy(app, action);
  add_list(app, action);
}

}  // namespace sessionctl
