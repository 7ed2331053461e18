#include "etcd_broker.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <map>
#include <mutex>
#include <sstream>
#include <vector>

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "clock.hpp"
#include "etcd/etcd_backend.hpp"
#include "liveness.hpp"
#include "log.hpp"

namespace sessionbroker::broker {
namespace {

namespace etcd = detail::etcd;

int open_pidfd(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

struct Registered {
  pid_t pid = 0;
  std::uint64_t start_time = 0;
  std::int64_t lease = 0;
};

// "pid start_time" (the value a client puts, etcd_backend.cpp); nullopt for anything else.
std::optional<Registered> parse(const mvccpb::KeyValue& kv) {
  std::istringstream in(kv.value());
  Registered r;
  if (!(in >> r.pid >> r.start_time) || r.pid <= 0) return std::nullopt;
  r.lease = kv.lease();
  return r;
}

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

}  // namespace

struct EtcdBroker::State {
  EtcdBrokerOptions opts;
  etcd::Keys keys;
  std::unique_ptr<etcd::Client> client;
  std::unique_ptr<etcd::Watcher> watcher;
  int eventfd = -1;
  int signalfd = -1;
  std::map<std::string, std::pair<int, Registered>> watched;  // by client key: pidfd, process

  std::mutex mu;
  std::vector<mvccpb::Event> pending;  // GUARDED_BY(mu): from the watch, for the loop
  bool resync = false;                 // GUARDED_BY(mu): the watch was compacted away

  ~State() {
    watcher.reset();
    for (auto& [k, w] : watched) close(w.first);
    if (eventfd >= 0) close(eventfd);
    if (signalfd >= 0) close(signalfd);
  }

  void poke() {
    const std::uint64_t one = 1;
    (void)!write(eventfd, &one, sizeof one);
  }

  void revoke(const std::string& key, const Registered& r, const char* why) {
    const auto t0 = detail::mono_ns();
    Status st = client->revoke(r.lease);
    if (st.code() == ErrorCode::kNotFound)  // it detached (revoking its own lease) before it exited
      log(Level::kDebug, "client pid {} ({}): {} after detaching", r.pid, key, why);
    else if (st)
      log(Level::kWarn, "client pid {} ({}): {}; lease {:x} revoked in {} us", r.pid, key, why, r.lease,
          (detail::mono_ns() - t0) / 1000);
    else
      log(Level::kError, "client pid {}: {}, but revoking lease {:x} failed: {}", r.pid, why, r.lease, st.to_string());
  }

  void add(const std::string& key, const Registered& r) {
    if (watched.count(key)) return;
    const int fd = open_pidfd(r.pid);
    if (fd < 0 || detail::check_liveness(r.pid, r.start_time) == detail::Liveness::kDead) {
      if (fd >= 0) close(fd);
      revoke(key, r, "already dead");
      return;
    }
    watched[key] = {fd, r};
    log(Level::kDebug, "watching client pid {} ({})", r.pid, key);
  }

  void drop(const std::string& key) {
    auto it = watched.find(key);
    if (it == watched.end()) return;
    close(it->second.first);
    watched.erase(it);
  }

  // The host's client keys afresh, then a watch from just after that read.
  Status sync() {
    const std::string p = keys.clients_of(opts.host_id);
    auto r = client->range(p, etcd::prefix_end(p));
    if (!r) return r.status();
    std::map<std::string, Registered> now;
    for (const auto& kv : r->kvs())
      if (auto reg = parse(kv)) now[kv.key()] = *reg;
    for (auto it = watched.begin(); it != watched.end();) {
      auto next = std::next(it);
      if (!now.count(it->first)) drop(it->first);
      it = next;
    }
    for (const auto& [k, reg] : now) add(k, reg);
    auto w = watcher->watch(
        p, etcd::prefix_end(p), r->header().revision() + 1,
        [this](const etcd::Events& events, std::int64_t) {
          std::lock_guard lk(mu);
          for (const auto& e : events) pending.push_back(e);
          poke();
        },
        [this](std::int64_t) {
          std::lock_guard lk(mu);
          resync = true;
          poke();
        });
    return w ? Status{} : w.status();
  }

  void apply_pending() {
    std::vector<mvccpb::Event> events;
    bool again;
    {
      std::lock_guard lk(mu);
      events.swap(pending);
      again = std::exchange(resync, false);
    }
    for (const auto& e : events) {
      if (e.type() == mvccpb::Event::DELETE) {
        drop(e.kv().key());
      } else if (auto reg = parse(e.kv())) {
        add(e.kv().key(), *reg);
      }
    }
    if (again) {
      if (Status st = sync(); !st) log(Level::kError, "re-reading the clients after a compaction: {}", st.to_string());
    }
  }
};

Result<std::unique_ptr<EtcdBroker>> EtcdBroker::start(const EtcdBrokerOptions& opts) {
  g_verbose = opts.verbose;
  auto address = etcd::parse_address(opts.store);
  if (!address) return address.status();
  auto s = std::make_unique<State>();
  s->opts = opts;
  if (s->opts.host_id.empty()) s->opts.host_id = host_name();
  if (s->opts.host_id.find('/') != std::string::npos)
    return Status(ErrorCode::kInvalidArgument, "--host-id must not contain '/'");
  s->keys = etcd::Keys{address->prefix};
  auto client = etcd::Client::connect(address->endpoints);
  if (!client) return client.status();
  s->client = std::move(*client);
  s->watcher = std::make_unique<etcd::Watcher>(*s->client);
  s->eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s->eventfd < 0) return Status(ErrorCode::kSystem, fmt::format("eventfd: {}", std::strerror(errno)));
  if (Status st = s->sync(); !st) return st;
  log(Level::kInfo, "serving store '{}' for host '{}': {} clients", opts.store, s->opts.host_id, s->watched.size());
  return std::unique_ptr<EtcdBroker>(new EtcdBroker(std::move(s)));
}

EtcdBroker::EtcdBroker(std::unique_ptr<State> state) : state_(std::move(state)) {}
EtcdBroker::~EtcdBroker() = default;

Status EtcdBroker::run() {
  State& s = *state_;
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&set, sig);
  s.signalfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (s.signalfd < 0) return Status(ErrorCode::kSystem, fmt::format("signalfd: {}", std::strerror(errno)));
  for (;;) {
    std::vector<pollfd> fds{{s.signalfd, POLLIN, 0}, {s.eventfd, POLLIN, 0}};
    std::vector<std::string> owners;
    for (auto& [k, w] : s.watched) {
      fds.push_back({w.first, POLLIN, 0});
      owners.push_back(k);
    }
    if (poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR)
      return Status(ErrorCode::kSystem, fmt::format("poll: {}", std::strerror(errno)));
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo si{};
      while (read(s.signalfd, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
        if (si.ssi_signo == SIGHUP) {
          log(Level::kInfo, "SIGHUP: nothing to reload; {} clients watched on host '{}'", s.watched.size(), s.opts.host_id);
          continue;
        }
        log(Level::kInfo, "signal {}: stopping", si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
        return {};
      }
    }
    for (std::size_t i = 2; i < fds.size(); ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      auto it = s.watched.find(owners[i - 2]);
      if (it == s.watched.end()) continue;
      const Registered r = it->second.second;
      s.drop(owners[i - 2]);
      s.revoke(owners[i - 2], r, "exited");
    }
    if (fds[1].revents & POLLIN) {
      std::uint64_t n;
      (void)!read(s.eventfd, &n, sizeof n);
      s.apply_pending();
    }
  }
}

}  // namespace sessionbroker::broker
