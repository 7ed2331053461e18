// break-lock, expire, evict-client: an administrator's remedies for a holder that hangs, a session
// that must go now, and a process that misbehaves.
//
// Process safety: like dump and check, these do not attach. An administrator is not a client: the
// commands work when the client table is full and take no lock record or lease. They act through the
// store's admin view (admin_store.hpp): on a segment the same mutexes as the lock protocol (the
// registry mutex, then one session mutex at a time); on etcd transactions fenced by the tokens and
// generation read, and lease revocation. Attached clients keep working throughout; the holders
// concerned hear kLost exactly as when a revoke deadline passes (segment) or their key is deleted
// (etcd).
//
// Confirmation: without --yes, a command shows what it will do (read from the session snapshot or
// the client table) and goes on only if the person at the terminal answers y. With neither --yes
// nor a terminal on stdin it refuses before it opens the store. What is shown is a snapshot: a
// lock granted between the question and the answer is broken as well, and the output names what
// was actually broken.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "admin_store.hpp"
#include "commands.hpp"
#include "dump_render.hpp"
#include "help.hpp"

namespace sessionctl {
namespace {

using sessionbroker::ErrorCode;
using sessionbroker::Result;
using sessionbroker::Status;
using Holder = HolderRow;

struct SessionArgs {
  std::string store, session;
  bool yes = false;
};

struct EvictArgs {
  std::string store, host;
  pid_t pid = 0;
  bool yes = false;
};

// ---- confirmation ----

// Without --yes only a person at a terminal can agree; checked before the segment is touched.
std::optional<int> refuse_without_terminal(bool yes, const std::string& command) {
  if (yes || isatty(STDIN_FILENO)) return std::nullopt;
  fmt::print(stderr, "sessionctl: usage: {} changes the store and stdin is not a terminal to confirm on: pass --yes\n",
             command);
  return kExitUsage;
}

// With --yes, true. Otherwise shows `effect` as a question on the terminal; true on y or yes.
bool confirmed(bool yes, const std::string& effect) {
  if (yes) return true;
  fmt::print(stderr, "{}? [y/N] ", effect);
  std::fflush(stderr);
  std::string answer;
  std::getline(std::cin, answer);
  std::transform(answer.begin(), answer.end(), answer.begin(), [](unsigned char c) { return std::tolower(c); });
  answer.erase(std::remove_if(answer.begin(), answer.end(), [](unsigned char c) { return std::isspace(c); }),
               answer.end());
  if (answer == "y" || answer == "yes") return true;
  fmt::print(stderr, "sessionctl: not confirmed; nothing changed\n");
  return false;
}

// The refusal check, opening the store, then `fn(store)`. A store that cannot be opened is reported.
template <class Fn>
int run_admin(const std::string& command, const std::string& address, bool yes, Fn&& fn) {
  if (auto refused = refuse_without_terminal(yes, command)) return *refused;
  auto store = open_admin_store(address);
  if (!store) return fail(store.status());
  return fn(**store);
}

// ---- descriptions ----

std::string plural(std::size_t n, const char* one, const char* many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

std::string describe(const Holder& h) {
  return fmt::format("pid {} {} token {}", h.pid, mode_name(h.mode), h.token);
}

std::string describe(const std::vector<Holder>& holders) {
  std::string out;
  for (const auto& h : holders) out += (out.empty() ? "" : ", ") + describe(h);
  return out;
}

// ---- sessions: break-lock, expire ----

// One line per broken lock. A token missing from `shown` was granted after the snapshot.
void print_broken(const std::string& id, const std::vector<Holder>& shown, const std::vector<std::uint64_t>& tokens) {
  for (std::uint64_t t : tokens) {
    auto h = std::find_if(shown.begin(), shown.end(), [t](const Holder& x) { return x.token == t; });
    if (h == shown.end())
      fmt::print("broke session={} token={} (granted after the question)\n", id, t);
    else
      fmt::print("broke session={} pid={} mode={} token={}\n", id, h->pid, mode_name(h->mode), t);
  }
}

int run_break_lock(const SessionArgs& a) {
  return run_admin("break-lock", a.store, a.yes, [&a](AdminStore& store) -> int {
    auto view = store.session(a.session);
    if (!view) return fail(view.status());
    const auto& holders = view->holders;
    if (holders.empty()) {
      fmt::print("session '{}' has no holder: nothing to break\n", a.session);
      return kExitOk;
    }
    std::string effect = fmt::format("break {} on session '{}': {}", plural(holders.size(), "lock", "locks"),
                                     a.session, describe(holders));
    if (!view->queue.empty())
      effect += fmt::format(" (then the first of {} is granted)", plural(view->queue.size(), "waiter", "waiters"));
    if (!confirmed(a.yes, effect)) return kExitError;
    auto broken = store.break_locks(*view);
    if (!broken) return fail(broken.status());
    if (broken->empty()) fmt::print("session '{}' has no holder any more: nothing broken\n", a.session);
    print_broken(a.session, holders, *broken);
    return kExitOk;
  });
}

int run_expire(const SessionArgs& a) {
  return run_admin("expire", a.store, a.yes, [&a](AdminStore& store) -> int {
    auto view = store.session(a.session);
    if (!view) return fail(view.status());
    const SessionRow& snap = *view;
    std::string effect = fmt::format("remove session '{}' ({}{}) as if its TTL had passed", a.session,
                                     plural(snap.attrs.size(), "attribute", "attributes"),
                                     snap.version ? fmt::format(", version {}", *snap.version) : "");
    if (!snap.holders.empty())
      effect += fmt::format(", breaking {}: {}", plural(snap.holders.size(), "lock", "locks"), describe(snap.holders));
    if (!snap.queue.empty())
      effect += fmt::format(", failing {}", plural(snap.queue.size(), "queued request", "queued requests"));
    if (!confirmed(a.yes, effect)) return kExitError;
    if (Status st = store.expire(snap); !st) return fail(st);
    fmt::print("expired session={}\n", a.session);
    return kExitOk;
  });
}

// ---- clients: evict-client ----

// The one client `a` names: by pid, and on etcd also by --host when the pid is registered on more
// than one host (pids are per host).
Result<ClientRow> look_up_client(AdminStore& store, const EvictArgs& a) {
  auto found = store.clients_of(a.pid);
  if (!found) return found.status();
  std::vector<ClientRow> rows;
  for (auto& c : *found)
    if (a.host.empty() || c.host == a.host) rows.push_back(std::move(c));
  if (rows.empty())
    return Status(ErrorCode::kNotFound, fmt::format("pid {}{} is not attached to {} '{}'", a.pid,
                                                    a.host.empty() ? "" : " on host " + a.host,
                                                    is_etcd_store(a.store) ? "store" : "segment", a.store));
  if (rows.size() > 1) {
    std::string hosts;
    for (const auto& c : rows) hosts += (hosts.empty() ? "" : ", ") + c.host;
    return Status(ErrorCode::kInvalidArgument, fmt::format("pid {} is registered on hosts {}: pass --host", a.pid, hosts));
  }
  return rows.front();
}

// What eviction takes from the client: its locks and its queued requests, session by session.
Result<std::string> describe_holdings(AdminStore& store, const ClientRow& client) {
  auto m = store.dump();
  if (!m) return m.status();
  std::vector<std::string> locks, queued;
  for (const auto& s : m->sessions) {
    for (const auto& h : s.holders)
      if (h.client == client.id) locks.push_back(fmt::format("'{}' {} token {}", s.id, mode_name(h.mode), h.token));
    for (const auto& w : s.queue)
      if (w.client == client.id) queued.push_back(fmt::format("'{}'", s.id));
  }
  auto list = [](const std::vector<std::string>& items) {
    std::string out;
    for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
    return out.empty() ? std::string() : " (" + out + ")";
  };
  return fmt::format("break {}{}, cancel {}{}", plural(locks.size(), "lock", "locks"), list(locks),
                     plural(queued.size(), "queued request", "queued requests"), list(queued));
}

int run_evict(const EvictArgs& a) {
  return run_admin("evict-client", a.store, a.yes, [&a](AdminStore& store) -> int {
    auto client = look_up_client(store, a);
    if (!client) return fail(client.status());
    auto holdings = describe_holdings(store, *client);
    if (!holdings) return fail(holdings.status());
    const bool etcd = is_etcd_store(a.store);
    const std::string effect =
        etcd ? fmt::format("evict pid {} on host {} (revoke its process lease {}): {}; it hears kLost and its next "
                           "request takes a new lease", a.pid, client->host, client->id, *holdings)
             : fmt::format("evict pid {} (client {}): {}; its next call fails with kDetached", a.pid, client->id,
                           *holdings);
    if (!confirmed(a.yes, effect)) return kExitError;
    auto n = store.evict(*client);
    if (!n) return fail(n.status());
    fmt::print("evicted pid={} client={} broken_or_cancelled={}\n", a.pid, client->id, *n);
    return kExitOk;
  });
}

// ---- registration ----

void add_common(CLI::App& sub, std::string& store, bool& yes) {
  add_store_option(sub, store);
  sub.add_flag("-y,--yes", yes, "do it without asking (required when stdin is not a terminal)");
}

constexpr const char* kConfirmText =
    "Without --yes it shows what it is about to do and asks; only y or yes goes on. When stdin is not a "
    "terminal, --yes is required: without it the command refuses with exit status 2 and changes nothing.\n";

constexpr const char* kNotAttachedText =
    "It does not attach to the segment: it maps it and acts as an administrator, so it works when the "
    "client table is full, and clients keep working while it runs. On an etcd store (--store etcd://...) it "
    "reads and writes the key space of docs/etcd.md directly, without a lease of its own.\n";

void add_break_lock(CLI::App& app, Action& action) {
  auto a = std::make_shared<SessionArgs>();
  auto* sub = app.add_subcommand("break-lock", "take every lock on a session away from its holders, now");
  add_common(*sub, a->store, a->yes);
  sub->add_option("SESSION", a->session, "session id")->required();
  set_man_page(*sub, {
      .description = std::string(
          "Breaks every lock held on SESSION, the way a revoke deadline does: each holder's token is stale at "
          "once (its reads and commits fail with kStaleToken and write nothing), its revoke callback hears kLost, "
          "and the first request in the queue is granted, with a larger token. Uncommitted writes of the holders "
          "are lost; committed state stays. Use it on a holder that hangs while holding a lock. On etcd it deletes "
          "each holder's queue key if it still has the token read (a newer grant is never touched).\n"
          "\n"
          "Prints one line per lock broken: broke session=ID pid=PID mode=MODE token=TOKEN. A session without a "
          "holder is reported as such and left alone (exit status 0).\n"
          "\n") + kConfirmText + "\n" + kNotAttachedText,
      .exit_status = "3 when there is no such session. 1 also when the question is not answered y.",
      .examples =
          "Show the holder of cart-42 and ask before breaking its lock:\n"
          "  $ sessionctl break-lock cart-42\n"
          "  break 1 lock on session 'cart-42': pid 1234 exclusive token 5678? [y/N] y\n"
          "  broke session=cart-42 pid=1234 mode=exclusive token=5678\n"
          "\n"
          "From a script (no terminal to ask on):\n"
          "  $ sessionctl break-lock cart-42 --yes --store shop\n",
  });
  sub->callback([&action, a] { action = [a] { return run_break_lock(*a); }; });
}

void add_expire(CLI::App& app, Action& action) {
  auto a = std::make_shared<SessionArgs>();
  auto* sub = app.add_subcommand("expire", "remove a session now, as if its TTL had passed, breaking any lock");
  add_common(*sub, a->store, a->yes);
  sub->add_option("SESSION", a->session, "session id")->required();
  set_man_page(*sub, {
      .description = std::string(
          "Removes SESSION and its attributes at once, as the broker does when its TTL passes, except that it does "
          "not wait for the session to be idle: locks still held are broken (the holders' tokens go stale, their "
          "revoke callbacks hear kLost) and queued requests fail with kNotFound. Unlike destroy, it does not ask "
          "the holders to release first. Opening the session afterwards fails with kNotFound. On etcd it deletes "
          "the session's keys (session and queue) in one transaction if the session is still the one read, and "
          "revokes the session's lease.\n"
          "\n"
          "Prints expired session=ID.\n"
          "\n") + kConfirmText + "\n" + kNotAttachedText,
      .exit_status = "3 when there is no such session. 1 also when the question is not answered y.",
      .examples =
          "Remove the session of a user who logged out, even though a worker still holds it:\n"
          "  $ sessionctl expire user:42 --yes\n"
          "  expired session=user:42\n",
  });
  sub->callback([&action, a] { action = [a] { return run_expire(*a); }; });
}

void add_evict_client(CLI::App& app, Action& action) {
  auto a = std::make_shared<EvictArgs>();
  auto* sub = app.add_subcommand("evict-client", "detach a process by force: break its locks, cancel its requests");
  add_common(*sub, a->store, a->yes);
  sub->add_option("PID", a->pid, "process id of the attached client (see sessionctl dump)")
      ->required()
      ->check(CLI::PositiveNumber);
  sub->add_option("--host", a->host, "etcd: the host id PID registered under (session-broker's --host-id)")
      ->type_name("ID");
  set_man_page(*sub, {
      .description = std::string(
          "Evicts the process PID from the segment's client table: every lock it holds is broken (its tokens go "
          "stale, its revoke callback hears kLost, the next waiter is granted), every request it has queued is "
          "cancelled, and its next library call fails with kDetached; it may attach again. Its client slot is "
          "freed when it detaches or exits (the broker reclaims it if it dies). Use it on a process that keeps "
          "taking locks it should not.\n"
          "\n"
          "On an etcd store it revokes the process lease registered by PID (its client key names it): etcd "
          "deletes the client key and every queue key of the process at once, the next waiters are granted, the "
          "process hears kLost for every grant, its fenced calls fail with kStaleToken and its next request takes "
          "a new lease. Pids are per host: when PID is registered on more than one host, --host names the one.\n"
          "\n"
          "Prints evicted pid=PID client=SLOT broken_or_cancelled=N (on etcd client=LEASE).\n"
          "\n") + kConfirmText + "\n" + kNotAttachedText,
      .exit_status = "3 when PID is not attached to the store. 1 also when the question is not answered y.",
      .examples =
          "Find the client's pid, then evict it:\n"
          "  $ sessionctl dump\n"
          "  $ sessionctl evict-client 1234 --yes\n"
          "  evicted pid=1234 client=3 broken_or_cancelled=1\n",
  });
  sub->callback([&action, a] { action = [a] { return run_evict(*a); }; });
}

}  // namespace

void add_admin_commands(CLI::App& app, Action& action) {
  add_break_lock(app, action);
  add_expire(app, action);
  add_evict_client(app, action);
}

}  // namespace sessionctl
