#include "recovery.hpp"

#include <algorithm>
#include <csignal>
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <vector>

#include <fmt/format.h>

#include "broker_child.hpp"
#include "clock.hpp"
#include "segment.hpp"
#include "sessionbroker/client.hpp"
#include "admin.hpp"
#include "registry.hpp"

namespace torture {
namespace {

using namespace sessionbroker;
using namespace std::chrono_literals;

struct Sample {
  double pidfd_ms, grant_ms;
};

// Child: takes the session, says so on `ready`, and holds it until killed.
pid_t spawn_holder(const std::string& segment, int ready_fd) {
  const pid_t pid = fork();
  if (pid != 0) return pid;
  auto c = Client::attach(segment);
  auto l = (*c)->open("r")->lock_all(Mode::kExclusive, in(10s));
  (void)!write(ready_fd, l ? "y" : "n", 1);
  pause();
  _exit(0);
}

// Child: queues for the session and records the moment it is granted.
pid_t spawn_waiter(const std::string& segment, std::atomic<std::uint64_t>* granted_ns) {
  const pid_t pid = fork();
  if (pid != 0) return pid;
  auto c = Client::attach(segment);
  auto l = (*c)->open("r")->lock_all(Mode::kExclusive, in(10s));
  granted_ns->store(l ? detail::mono_ns() : 0);
  _exit(l ? 0 : 1);
}

std::optional<Sample> one_death(const std::string& segment, detail::Segment& seg, std::atomic<std::uint64_t>* granted) {
  int ready[2];
  if (pipe(ready) != 0) return std::nullopt;
  const pid_t holder = spawn_holder(segment, ready[1]);
  char ok = 0;
  (void)!read(ready[0], &ok, 1);
  close(ready[0]);
  close(ready[1]);
  granted->store(0);
  const pid_t waiter = spawn_waiter(segment, granted);
  const auto ref = detail::Registry(seg).open_session("r");
  detail::Admin admin(seg);
  for (int i = 0; i < 10000 && admin.snapshot(ref->slot)->queue.empty(); ++i) poll(nullptr, 0, 1);  // until queued
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, holder, 0));
  const std::uint64_t t0 = detail::mono_ns();
  kill(holder, SIGKILL);
  pollfd p{pidfd, POLLIN, 0};
  poll(&p, 1, 10000);
  const std::uint64_t t_pidfd = detail::mono_ns();
  close(pidfd);
  int status = 0;
  waitpid(waiter, &status, 0);
  waitpid(holder, nullptr, 0);
  if (ok != 'y' || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || granted->load() < t0) return std::nullopt;
  return Sample{(t_pidfd - t0) / 1e6, (granted->load() - t0) / 1e6};
}

void report(const char* mode, std::vector<Sample> s) {
  if (s.empty()) return fmt::print("{}: no samples\n", mode);
  auto pct = [&](auto field, double q) {
    std::vector<double> v;
    for (auto& x : s) v.push_back(field(x));
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))];
  };
  auto grant = [](const Sample& x) { return x.grant_ms; };
  auto pidfd = [](const Sample& x) { return x.pidfd_ms; };
  fmt::print("{:<12} n={:<5} kill->grant p50 {:8.3f} ms  p99 {:8.3f} ms   (pidfd floor p50 {:.3f} ms, p99 {:.3f} ms)\n", mode,
             s.size(), pct(grant, 0.5), pct(grant, 0.99), pct(pidfd, 0.5), pct(pidfd, 0.99));
}

}  // namespace

int measure_recovery(const std::string& broker_path, const std::string& segment, int rounds) {
  auto* granted = static_cast<std::atomic<std::uint64_t>*>(
      mmap(nullptr, sizeof(std::atomic<std::uint64_t>), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  for (bool broker_up : {true, false}) {
    sessionbroker::broker::BrokerChild broker(broker_path, segment);
    if (!broker.start()) return fmt::print(stderr, "cannot start {}\n", broker_path), 1;
    auto seg = detail::Segment::open(segment);
    (void)detail::Registry(**seg).create_session("r", 0);
    if (!broker_up) broker.kill9();
    std::vector<Sample> samples;
    int failed = 0;
    for (int i = 0; i < rounds; ++i) {
      if (auto s = one_death(segment, **seg, granted)) samples.push_back(*s);
      else ++failed;
    }
    report(broker_up ? "broker up" : "broker down", samples);
    if (failed) fmt::print("  {} rounds failed\n", failed);
    broker.kill9();
    detail::Segment::remove(segment);
  }
  return 0;
}

}  // namespace torture
