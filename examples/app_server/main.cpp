// sessionbroker-app-server: a pre-fork application server whose worker processes, each with
// several threads, serve the requests of many users with a shopping cart in their session. The
// same traffic runs twice:
//
//   1. session state in files, read at the start of a request and written back at its end with no
//      lock: overlapping requests of one user overwrite each other's changes, and the parent counts
//      the cart items and page views that were served but are not in the stored state;
//   2. session state in sessionbroker, each request locking only the attribute it changes (the
//      threads of a worker share its cached session lock): nothing is lost.
//
// Exits 0 when the sessionbroker run lost nothing. The first run's losses are the point of the
// demo; they depend on timing, so a run that happens to lose nothing there is reported, not failed.
// Starts its own session-broker on a private segment, which it removes when it stops.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include <CLI/CLI.hpp>

#include "demo_process.hpp"
#include "prefork.hpp"

namespace {

using namespace std::chrono_literals;
using app::UserState;
using demo::Clock;
using demo::say;

struct Options {
  std::string broker;
  app::ServerOptions server;
  bool verbose = false;
};

struct Outcome {
  std::string name;
  app::RunResult run;
  std::vector<UserState> stored;
  long items() const { return sum(&UserState::items); }
  long views() const { return sum(&UserState::views); }
  long lost() const { return run.served.total_items() - items() + run.served.total_views() - views(); }
  long sum(long UserState::*field) const {
    long n = 0;
    for (const auto& s : stored) n += s.*field;
    return n;
  }
};

std::string find_broker(const Options& o) {
  if (!o.broker.empty()) return o.broker;
  const std::string next_to_us = demo::self_dir() + "/session-broker";
  if (access(next_to_us.c_str(), X_OK) == 0) return next_to_us;
  return SESSIONBROKER_DEMO_BROKER;  // where the build put it
}

// Runs the traffic against one kind of store and reads what the store holds afterwards.
std::optional<Outcome> run(std::string name, const Options& o, const app::StoreFactory& make_store,
                           const std::function<std::optional<std::vector<UserState>>(std::string&)>& read_back) {
  Outcome out{std::move(name), app::run_prefork(o.server, make_store), {}};
  if (!out.run.ok) {
    say("{}: {}", out.name, out.run.error);
    return std::nullopt;
  }
  std::string error;
  auto stored = read_back(error);
  if (!stored) {
    say("{}: reading the final state: {}", out.name, error);
    return std::nullopt;
  }
  out.stored = std::move(*stored);
  return out;
}

void print_row(const Outcome& r) {
  const auto& s = r.run.served;
  say("  {:<16} {:>10} {:>10} {:>6}   {:>10} {:>10} {:>6}   {:>6.2f}s", r.name, s.total_items(), r.items(),
      s.total_items() - r.items(), s.total_views(), r.views(), s.total_views() - r.views(), r.run.seconds);
}

// Prints the table; returns true when the sessionbroker run lost nothing.
bool report(const Outcome& naive, const Outcome& broker) {
  say("  {:<16} {:>10} {:>10} {:>6}   {:>10} {:>10} {:>6}   {:>7}", "session state in", "items", "in carts", "lost",
      "page views", "in profile", "lost", "time");
  print_row(naive);
  print_row(broker);
  const auto& b = broker.run.served;
  say("sessionbroker: {} requests took the session lock from the store {} times; the rest ran on a lock their "
      "process had cached", b.requests, b.process_grants);
  const long changes = naive.run.served.total_items() + naive.run.served.total_views();
  if (naive.lost() > 0)
    say("files, no lock: {} of {} changes lost ({:.1f}%): requests of one user overlapped and the later write won",
        naive.lost(), changes, 100.0 * static_cast<double>(naive.lost()) / static_cast<double>(changes));
  else
    say("files, no lock: no change lost this time (the race depends on timing; try more --threads)");
  for (std::size_t u = 0; u < broker.stored.size(); ++u) {
    if (broker.stored[u].items != b.items_added[u] || broker.stored[u].views != b.views[u])
      say("sessionbroker: {} holds {} items and {} views, but {} and {} were served", app::user_id(static_cast<int>(u)),
          broker.stored[u].items, broker.stored[u].views, b.items_added[u], b.views[u]);
  }
  const bool ok = broker.lost() == 0 && broker.items() == b.total_items() && broker.views() == b.total_views();
  say("sessionbroker: {}", ok ? "no update lost. OK" : "UPDATES LOST: FAILED");
  return ok;
}

bool run_both(const Options& o, const std::string& segment, const std::string& dir) {
  const auto& s = o.server;
  std::string error;
  if (!app::FileStore::create(dir, s.users, error) || !app::BrokerStore::create(segment, s.users, error)) {
    say("cannot create the sessions: {}", error);
    return false;
  }
  auto naive = run(
      "files, no lock", o, [&](std::string& e) -> std::unique_ptr<app::SessionStore> { return app::FileStore::open(dir, s.users, e); },
      [&](std::string& e) { return app::FileStore::read_all(dir, s.users, e); });
  auto broker = run(
      "sessionbroker", o,
      [&](std::string& e) -> std::unique_ptr<app::SessionStore> { return app::BrokerStore::attach(segment, s.users, e); },
      [&](std::string& e) { return app::BrokerStore::read_all(segment, s.users, e); });
  return naive && broker && report(*naive, *broker);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sessionbroker-app-server: a pre-fork app server with shopping carts in its sessions, run with "
               "unlocked session files (lost updates) and with sessionbroker (none).",
               "sessionbroker-app-server"};
  Options o;
  auto& s = o.server;
  app.add_option("--broker", o.broker, "session-broker binary (default: next to this one, else the build's)");
  app.add_option("--workers", s.workers, "worker processes")->capture_default_str()->check(CLI::Range(1, 32));
  app.add_option("--threads", s.threads, "threads per worker")->capture_default_str()->check(CLI::Range(1, 64));
  app.add_option("--users", s.users, "users (sessions)")->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("--requests", s.requests_per_thread, "requests per thread")->capture_default_str()->check(CLI::Range(1, 100000));
  app.add_flag("-v,--verbose", o.verbose, "show the broker's log");
  CLI11_PARSE(app, argc, argv);

  const std::string segment = fmt::format("sbapp-{}", getpid());
  std::string dir = (std::filesystem::temp_directory_path() / "sessionbroker-app-server.XXXXXX").string();
  if (!mkdtemp(dir.data())) {
    say("cannot create a directory for the session files in {}", std::filesystem::temp_directory_path().string());
    return 1;
  }
  std::string error;
  const std::string broker_path = find_broker(o);
  auto broker = demo::BrokerProcess::start(broker_path, segment, o.verbose, Clock::now() + 5s, error);
  if (!broker) {
    say("cannot start the broker: {}", error);
    std::filesystem::remove_all(dir);
    return 1;
  }
  say("{} pre-forked workers x {} threads serve {} requests of {} users (a cart and a profile each), twice:", s.workers,
      s.threads, s.workers * s.threads * s.requests_per_thread, s.users);
  say("  with session files read at the start of a request and written at its end (no lock), then with sessionbroker");
  const bool ok = run_both(o, segment, dir);
  std::filesystem::remove_all(dir);
  if (!broker->stop(Clock::now() + 5s, error)) {
    say("{}", error);
    return 1;
  }
  return ok ? 0 : 1;
}
