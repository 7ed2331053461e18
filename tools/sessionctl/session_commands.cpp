// create, destroy, list: the session table.
#include <cstdio>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "commands.hpp"

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
  add_segment_option(*sub, a->segment);
  sub->add_option("SESSION", a->session, "session id")->required();
  add_duration_option(*sub, "--ttl", a->ttl, "idle time after which the broker expires it (default: the segment's)");
  sub->callback([&action, a] { action = [a] { return run_create(*a); }; });
}

void add_destroy(CLI::App& app, Action& action) {
  auto a = std::make_shared<DestroyArgs>();
  auto* sub = app.add_subcommand("destroy", "destroy a session once its exclusive lock is granted");
  add_segment_option(*sub, a->segment);
  sub->add_option("SESSION", a->session, "session id")->required();
  add_duration_option(*sub, "--timeout", a->timeout, "how long to wait for the exclusive lock (default 5s)");
  sub->callback([&action, a] { action = [a] { return run_destroy(*a); }; });
}

void add_list(CLI::App& app, Action& action) {
  auto a = std::make_shared<ListArgs>();
  auto* sub = app.add_subcommand("list", "print the id of every session, one per line");
  add_segment_option(*sub, a->segment);
  sub->callback([&action, a] { action = [a] { return run_list(*a); }; });
}

}  // namespace

void add_session_commands(CLI::App& app, Action& action) {
  add_create(app, action);
  add_destroy(app, action);
  add_list(app, action);
}

}  // namespace sessionctl
