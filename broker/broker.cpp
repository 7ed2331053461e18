#include "broker.hpp"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <map>
#include <thread>
#include <vector>

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "clock.hpp"
#include "liveness.hpp"
#include "log.hpp"
#include "admin.hpp"
#include "registry.hpp"

namespace sessionbroker::broker {
namespace {

using detail::Segment;
using detail::Admin;
using detail::Registry;

// Revoke deadlines are checked this often (a scan of the lock records); idle expiry every
// kExpiryEvery-th pass (a scan of the session table). Dead clients are noticed at once (pidfd).
constexpr int kHousekeepingMs = 100;
constexpr int kExpiryEvery = 10;

// glibc 2.36's <sys/pidfd.h> lacks extern "C" for C++, so call the system call directly.
int open_pidfd(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

struct Watched {
  int pidfd;
  detail::ClientInfo client;  // the slot as read under the registry mutex when the watch began
};

}  // namespace

// The event loop. Everything it touches in the segment goes through the registry (clients, idle
// expiry) and the admin role (revoke deadlines), under the protocol.
class Broker::Loop {
 public:
  Loop(const BrokerOptions& opts, Segment& seg) : opts_(opts), seg_(seg), registry_(seg), admin_(seg) {}
  ~Loop() {
    for (auto& [c, w] : watched_) close(w.pidfd);
    if (eventfd_ >= 0) close(eventfd_);
    if (signalfd_ >= 0) close(signalfd_);
  }

  Status run() {
    try {
      return run_loop();
    } catch (const shm::SegmentCorrupt& e) {
      stop_ = true;
      return Status(ErrorCode::kCorrupt, fmt::format("segment '{}': {}", seg_.name(), e.what()));
    }
  }

 private:
  Status run_loop() {
    sigset_t set;
    sigemptyset(&set);
    for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&set, sig);
    signalfd_ = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    eventfd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (signalfd_ < 0 || eventfd_ < 0) return Status(ErrorCode::kSystem, fmt::format("signalfd/eventfd: {}", std::strerror(errno)));
    // Read the epoch before the first scan: a client that registers after this read moves the
    // epoch past `seen`, so the watcher reports it even if the scan below ran before it registered.
    const std::uint32_t seen = shm::load(seg_.header().registry_epoch);
    std::thread watcher([this, seen] { watch_registry(seen); });
    struct Joiner {  // the watcher stops also when the loop throws
      Loop& loop;
      std::thread& t;
      ~Joiner() {
        loop.stop_ = true;
        shm::bump_and_wake(loop.seg_.header().registry_epoch);
        t.join();
      }
    } joiner{*this, watcher};
    return loop();
  }

  // Sleeps on the registry epoch and pokes the loop's eventfd when it moves.
  void watch_registry(std::uint32_t seen) {
    auto& epoch = seg_.header().registry_epoch;
    while (!stop_) {
      shm::futex_wait(epoch, seen, shm::Clock::now() + std::chrono::seconds(1));
      const std::uint32_t now = shm::load(epoch);
      if (now != seen) {
        seen = now;
        const std::uint64_t one = 1;
        (void)!write(eventfd_, &one, sizeof one);
      }
    }
  }

  Status loop() {
    rescan_clients();
    std::uint64_t next_housekeeping = detail::mono_ns();
    for (;;) {
      std::vector<pollfd> fds{{signalfd_, POLLIN, 0}, {eventfd_, POLLIN, 0}};
      std::vector<std::uint32_t> owners;
      for (auto& [c, w] : watched_) {
        fds.push_back({w.pidfd, POLLIN, 0});
        owners.push_back(c);
      }
      const std::uint64_t now = detail::mono_ns();
      const int timeout = now >= next_housekeeping ? 0 : static_cast<int>((next_housekeeping - now) / 1'000'000 + 1);
      if (poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR)
        return Status(ErrorCode::kSystem, fmt::format("poll: {}", std::strerror(errno)));
      if (fds[0].revents & POLLIN) {
        signalfd_siginfo si{};
        while (read(signalfd_, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
          if (si.ssi_signo == SIGHUP) {
            log(Level::kInfo, "SIGHUP: nothing to reload; clients={} sessions={}", seg_.header().client_count,
                seg_.header().session_count);
            continue;
          }
          log(Level::kInfo, "signal {}: stopping", si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
          return {};
        }
      }
      for (std::size_t i = 2; i < fds.size(); ++i)
        if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) client_exited(owners[i - 2]);
      if (fds[1].revents & POLLIN) {
        std::uint64_t n;
        (void)!read(eventfd_, &n, sizeof n);
        rescan_clients();
      }
      if (detail::mono_ns() >= next_housekeeping) {
        housekeeping();
        next_housekeeping = detail::mono_ns() + kHousekeepingMs * 1'000'000ull;
      }
    }
  }

  // Starts watching every attached client not yet watched (an evicted one still owns its slot
  // until it detaches or dies); stops watching slots that changed hands. The slots are read under
  // the registry mutex, so pid, start time and generation are of one attach, never torn.
  void rescan_clients() {
    std::map<std::uint32_t, detail::ClientInfo> attached;
    for (const auto& info : registry_.attached_clients()) attached[info.slot] = info;
    for (auto it = watched_.begin(); it != watched_.end();) {
      auto now = attached.find(it->first);
      if (now != attached.end() && now->second.generation == it->second.client.generation) {
        ++it;
        continue;
      }
      close(it->second.pidfd);
      it = watched_.erase(it);
    }
    for (const auto& [c, info] : attached) {
      if (watched_.count(c)) continue;
      const int fd = open_pidfd(info.pid);
      // The pidfd must name the process that attached: check the start time after opening it.
      if (fd < 0 || detail::check_liveness(info.pid, info.start_time) == detail::Liveness::kDead) {
        if (fd >= 0) close(fd);
        if (registry_.reclaim_if_dead(c, info.generation))
          log(Level::kWarn, "client {} (pid {}) was already dead: reclaimed", c, info.pid);
        continue;
      }
      watched_[c] = {fd, info};
      log(Level::kDebug, "watching client {} pid {}", c, info.pid);
    }
  }

  void client_exited(std::uint32_t c) {
    auto it = watched_.find(c);
    if (it == watched_.end()) return;
    const Watched w = it->second;
    close(w.pidfd);
    watched_.erase(it);
    const auto t0 = detail::mono_ns();
    if (registry_.reclaim_exited(w.client))
      log(Level::kWarn, "client {} (pid {}) died: locks and queue entries reclaimed in {} us", c, w.client.pid,
          (detail::mono_ns() - t0) / 1000);
    else
      log(Level::kDebug, "client {} (pid {}) exited after detaching", c, w.client.pid);
  }

  void housekeeping() {
    const std::uint64_t now = detail::mono_ns();
    enforce_revoke_deadline(now);
    if (++passes_ % kExpiryEvery != 0) return;
    for (std::uint32_t slot = 0; slot < seg_.caps().max_sessions; ++slot)
      if (auto id = registry_.expire_if_idle(slot, now)) log(Level::kInfo, "session '{}' expired (idle past its TTL)", *id);
  }

  // A holder that leaves a revoke request unanswered past the deadline loses the lock (fencing).
  void enforce_revoke_deadline(std::uint64_t now) {
    const std::uint64_t deadline_ns = detail::ms_to_ns(seg_.caps().revoke_deadline_ms);  // saturates: "never"
    for (const auto& b : admin_.break_overdue_revokes(now, deadline_ns))
      log(Level::kWarn, "client {} ignored a revoke request for {} ms: token {} broken", b.client,
          seg_.caps().revoke_deadline_ms, b.token);
  }

  const BrokerOptions& opts_;
  Segment& seg_;
  Registry registry_;
  Admin admin_;
  int signalfd_ = -1;
  int eventfd_ = -1;
  std::atomic<bool> stop_{false};
  std::uint64_t passes_ = 0;
  std::map<std::uint32_t, Watched> watched_;
};

void Broker::block_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&set, sig);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

Result<std::unique_ptr<Broker>> Broker::start(const BrokerOptions& opts) {
  g_verbose = opts.verbose;
  auto created = Segment::create(opts.segment, opts.create);
  if (created) {
    log(Level::kInfo, "created segment '{}' ({} bytes): clients={} sessions={} locks/client={} attr-memory={} bytes",
        opts.segment, (*created)->size(), opts.create.caps.max_clients, opts.create.caps.max_sessions,
        opts.create.caps.locks_per_client, std::uint64_t{opts.create.caps.block_count} * shm::kBlockBytes);
    const detail::PageUse pages = (*created)->pages();  // every page was touched by the creation
    if (pages.huge_bytes > 0)
      log(Level::kInfo, "pages: {} of {} resident KiB in 2 MiB pages", pages.huge_bytes / 1024, pages.bytes / 1024);
    else if (pages.known)
      log(Level::kInfo, "pages: 4 KiB: {}", pages.why);
    else
      log(Level::kInfo, "pages: unknown: {}", pages.why);
    return std::unique_ptr<Broker>(new Broker(opts, std::move(*created), false));
  }
  if (created.code() != ErrorCode::kAlreadyExists) return created.status();
  auto opened = Segment::open(opts.segment);
  if (!opened) return opened.status();
  if ((*opened)->owner_uid() != geteuid())
    return Status(ErrorCode::kPermissionDenied,
                  fmt::format("segment '{}' belongs to uid {}, not to this broker's user: refusing to adopt it",
                              opts.segment, (*opened)->owner_uid()));
  Registry registry(**opened);
  if (registry.retired()) {  // a broker retiring it died before the unlink: finish that, start afresh
    Segment::remove(opts.segment);
    log(Level::kWarn, "segment '{}' was retired but not removed: removed it, creating a new one", opts.segment);
    return start(opts);
  }
  int reclaimed = 0;
  try {
    reclaimed = registry.reclaim_all_dead();
  } catch (const shm::SegmentCorrupt& e) {
    return Status(ErrorCode::kCorrupt, fmt::format("segment '{}': {}", opts.segment, e.what()));
  }
  log(Level::kInfo, "adopted existing segment '{}': {} sessions, {} clients, {} dead clients reclaimed, next token {}",
      opts.segment, (*opened)->header().session_count, (*opened)->header().client_count, reclaimed,
      shm::load((*opened)->header().next_token));
  return std::unique_ptr<Broker>(new Broker(opts, std::move(*opened), true));
}

Broker::Broker(BrokerOptions opts, std::unique_ptr<Segment> seg, bool adopted)
    : opts_(std::move(opts)), seg_(std::move(seg)), adopted_(adopted) {
  seg_->header().broker_pid = static_cast<std::uint32_t>(getpid());
  seg_->header().broker_start_time = detail::process_start_time(getpid()).value_or(0);
}

Broker::~Broker() {
  if (!seg_) return;
  seg_->header().broker_pid = 0;
  if (opts_.remove_on_exit) {
    // Retire before unlinking: clients still mapping this segment must not go on locking in it
    // while a new broker creates another under the same name (LAYOUT.md "Retirement").
    int broken = 0;
    try {
      broken = Registry(*seg_).retire();
    } catch (const shm::SegmentCorrupt& e) {
      log(Level::kError, "retiring segment '{}': {}", opts_.segment, e.what());
    }
    Segment::remove(opts_.segment);
    log(Level::kInfo, "retired and removed segment '{}' ({} locks broken)", opts_.segment, broken);
  }
}

Status Broker::run() {
  Loop loop(opts_, *seg_);
  return loop.run();
}

}  // namespace sessionbroker::broker
