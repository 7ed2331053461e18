// session-broker: creates (or adopts) a segment and keeps it healthy. See broker.hpp.
#include <grp.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#if defined(SESSIONBROKER_WITH_SYSTEMD)
#include <systemd/sd-daemon.h>
#endif

#include "broker.hpp"
#include "etcd_broker.hpp"
#include "log.hpp"
#include "units.hpp"

using namespace sessionbroker;

namespace {

// CLI11 validators for "5s"-style durations and "64M"-style sizes.
std::string check_duration(const std::string& s) {
  return detail::parse_duration(s) ? std::string() : "expected a duration such as 200ms, 5s, 30m, of at most 2562047h";
}
std::string check_size(const std::string& s) {
  return detail::parse_size(s) ? std::string() : "expected a size such as 4096, 64K, 64M, 1G";
}

// Tells systemd how the service is doing (Type=notify: packaging/systemd/session-broker.service.in).
// A no-op when not run by systemd (no NOTIFY_SOCKET) or built without libsystemd.
void notify_service_manager([[maybe_unused]] const char* state) {
#if defined(SESSIONBROKER_WITH_SYSTEMD)
  sd_notify(0, state);
#endif
}

// Tells whoever waits that the broker is ready, runs it, and gives the exit status.
template <class B>
int serve(B& broker, int ready_fd) {
  if (ready_fd >= 0) {
    (void)!write(ready_fd, "ready\n", 6);
    close(ready_fd);
  }
  notify_service_manager("READY=1");
  Status st = broker.run();
  notify_service_manager("STOPPING=1");
  if (!st) {
    broker::log(broker::Level::kError, "{}", st.to_string());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  broker::Broker::block_signals();
  CLI::App app{
      "session-broker: owns a sessionbroker shared-memory segment.\n"
      "Creates the segment /dev/shm/NAME (or adopts it after a restart), watches attached clients and\n"
      "reclaims the locks of dead ones, expires idle sessions, and enforces the revoke deadline. Clients\n"
      "lock and unlock without it. Runs in the foreground and logs one line per event on stderr.\n"
      "Durations read like 1500us, 200ms, 5s (a bare number is seconds), 2m, 1h, at most 2562047h (292\n"
      "years; longer is rejected); sizes like 4096, 64K, 64M, 1G (powers of 1024; a bare number is\n"
      "bytes). The capacity options (--max-clients through --revoke-deadline) apply when the segment\n"
      "is created; an adopted segment keeps its own.",
      "session-broker"};
  app.footer(
      "Signals:\n"
      "  SIGTERM, SIGINT  stop: log it, and remove the segment if --remove-on-exit (else keep it, with its\n"
      "                   sessions and tokens, for the next start); attached clients keep working meanwhile\n"
      "  SIGHUP           log a status line (clients, sessions); nothing is reloaded\n"
      "\n"
      "Exit status:\n"
      "  0    stopped by SIGTERM or SIGINT\n"
      "  1    could not create or adopt the segment (exists with another owner, incompatible layout,\n"
      "       permission denied, ...) or a system call failed while running\n"
      "  2    invalid --attr-memory, --max-value, --mode or --group value\n"
      "  100+ command line rejected by the option parser: 105 malformed or out-of-range value,\n"
      "       109 unknown argument, 114 option without its value\n"
      "\n"
      "Examples:\n"
      "  session-broker --segment shop --max-sessions 100000 --attr-memory 1G --default-ttl 20m\n"
      "  session-broker --segment shop --mode 0660 --group www-data --revoke-deadline 2s");
  broker::BrokerOptions opts;
  std::uint32_t max_clients = 64, max_sessions = 4096, locks_per_client = 256;
  std::string attr_memory = "64M", max_value = "1M", default_ttl = "30m", revoke_deadline = "0", mode = "0600", group;
  int ready_fd = -1;
  std::string store;
  broker::EtcdBrokerOptions etcd_opts;
  app.add_option("--segment", opts.segment, "segment name: the object /dev/shm/NAME")
      ->type_name("NAME")->capture_default_str();
  app.add_option("--store", store,
                 "the store: a segment name (as --segment), or an etcd cluster\n"
                 "etcd://HOST:PORT[,HOST:PORT...]/PREFIX: then the broker watches\n"
                 "this host's clients and revokes a dead one's lease at once\n"
                 "(docs/etcd.md); the capacity options do not apply")
      ->type_name("ADDR");
  app.add_option("--host-id", etcd_opts.host_id,
                 "with an etcd store: the host whose clients this broker watches\n"
                 "(clients set SESSIONBROKER_HOST_ID; default: the hostname)")
      ->type_name("ID");
  app.add_option("--max-clients", max_clients, "most processes attached at once")
      ->capture_default_str()->check(CLI::Range(1u, 4096u));
  app.add_option("--max-sessions", max_sessions, "most sessions at once")
      ->capture_default_str()->check(CLI::Range(1u, 1u << 24));
  app.add_option("--locks-per-client", locks_per_client,
                 "most locks held or awaited at once by one process")
      ->capture_default_str()->check(CLI::Range(1u, 65536u));
  app.add_option("--attr-memory", attr_memory,
                 "attribute memory shared by all sessions, a size\n(allocated in 256-byte blocks)")
      ->type_name("SIZE")->capture_default_str()->check(check_size);
  app.add_option("--max-value", max_value, "largest attribute value, a size (1 byte..4 GiB)")
      ->type_name("SIZE")->capture_default_str()->check(check_size);
  app.add_option("--default-ttl", default_ttl,
                 "idle time (no grant, release or commit) before a session\n"
                 "created without a TTL expires; a duration, 0 = never")
      ->type_name("DURATION")->capture_default_str()->check(check_duration);
  app.add_option("--revoke-deadline", revoke_deadline,
                 "a holder that does not answer a revoke request within this\n"
                 "duration loses the lock (its token goes stale); 0 = never")
      ->type_name("DURATION")->capture_default_str()->check(check_duration);
  app.add_option("--mode", mode, "permissions of the segment, octal; widen only on purpose")
      ->type_name("OCTAL")->capture_default_str();
  app.add_option("--group", group,
                 "group to give the segment to (use with --mode 0660)\n(default: the broker's primary group)")
      ->type_name("GROUP");
  app.add_flag("--remove-on-exit", opts.remove_on_exit,
               "remove the segment when stopping\n(default: keep it, with its sessions, for a restart)");
  app.add_option("--ready-fd", ready_fd,
                 "write \"ready\\n\" to this file descriptor, then close it, once\n"
                 "the segment is usable (default: none; under systemd,\nreadiness goes by sd_notify)")
      ->type_name("FD");
  app.add_flag("-v,--verbose", opts.verbose, "log debug events too (default: info, warnings and errors)");
  CLI11_PARSE(app, argc, argv);
  if (store.empty() && opts.segment.starts_with("etcd://")) store = opts.segment;  // --segment: an alias
  if (store.starts_with("etcd://")) {
#if defined(SESSIONBROKER_WITH_ETCD)
    etcd_opts.store = store;
    etcd_opts.verbose = opts.verbose;
    auto b = broker::EtcdBroker::start(etcd_opts);
    if (!b) {
      broker::log(broker::Level::kError, "{}", b.status().to_string());
      return 1;
    }
    return serve(**b, ready_fd);
#else
    broker::log(broker::Level::kError, "--store {}: this build of session-broker has no etcd backend", store);
    return 2;
#endif
  }
  if (!store.empty()) opts.segment = store;

  auto& caps = opts.create.caps;
  const std::uint64_t blocks = *detail::parse_size(attr_memory) / shm::kBlockBytes;
  const std::uint64_t value_limit = *detail::parse_size(max_value);
  if (blocks == 0 || blocks > shm::kMaxBlocks || value_limit == 0 || value_limit > 0xFFFFFFFFull) {
    broker::log(broker::Level::kError, "--attr-memory must hold 1..{} blocks of {} bytes; --max-value 1 byte..4 GiB",
                shm::kMaxBlocks, shm::kBlockBytes);
    return 2;
  }
  caps = {max_clients, locks_per_client, max_sessions, static_cast<std::uint32_t>(blocks),
          static_cast<std::uint32_t>(value_limit), 0,
          static_cast<std::uint64_t>(detail::parse_duration(default_ttl)->count()),
          static_cast<std::uint64_t>(detail::parse_duration(revoke_deadline)->count())};
  try {
    opts.create.mode = static_cast<mode_t>(std::stoul(mode, nullptr, 8));
  } catch (const std::exception&) {
    broker::log(broker::Level::kError, "--mode must be octal, such as 0600 or 0660");
    return 2;
  }
  if (!group.empty()) {
    const struct group* g = getgrnam(group.c_str());
    if (!g) {
      broker::log(broker::Level::kError, "--group {}: no such group", group);
      return 2;
    }
    opts.create.gid = static_cast<int>(g->gr_gid);
  }

  auto b = broker::Broker::start(opts);
  if (!b) {
    broker::log(broker::Level::kError, "{}", b.status().to_string());
    return 1;
  }
  return serve(**b, ready_fd);
}
