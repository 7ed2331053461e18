// Process plumbing for sb_etcd: shared sample buffers, reaping, one-byte signals on pipes.
#include <poll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <new>
#include <sstream>
#include <string>

#include "etcd_bench.hpp"
#include "sessionbroker/shm/futex.hpp"

namespace sbetcd {

Samples* shared_samples() {
  void* p = mmap(nullptr, sizeof(Samples), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  auto* s = new (p) Samples{};
  s->reset();
  return s;
}

Turns* Turns::make(int block) {
  void* p = mmap(nullptr, sizeof(Turns), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  auto* t = new (p) Turns{};
  t->block_ = std::max(block, 1);
  return t;
}

void Turns::before(int me, int i) {
  if (i % block_ != 0) return;
  const auto mine = static_cast<std::uint32_t>(me);
  const auto give_up = sessionbroker::shm::Clock::now() + kTurnWait;
  for (;;) {
    const std::uint32_t t = std::atomic_ref(turn_).load(std::memory_order_acquire);
    if (t == mine || std::atomic_ref(done_[1 - me]).load(std::memory_order_acquire) != 0) return;
    if (sessionbroker::shm::futex_wait(turn_, t, give_up) == sessionbroker::shm::WaitResult::kTimedOut) return;
  }
}

void Turns::after(int me, int i) {
  if ((i + 1) % block_ == 0) hand_over(me);
}

void Turns::finish(int me) {
  std::atomic_ref(done_[me]).store(1, std::memory_order_release);
  hand_over(me);
}

void Turns::hand_over(int me) {
  std::atomic_ref(turn_).store(static_cast<std::uint32_t>(1 - me), std::memory_order_release);
  sessionbroker::shm::futex_wake(turn_);
}

void Samples::reset() {
  count.store(0);
  stop.store(false);
  ready.store(0);
  last_holder.store(-1);
  released_ns.store(0);
  agent.store(0);
  cpu_ns.store(0);
}

std::uint64_t cpu_ns_of(int pid) {
  if (pid == 0) {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    auto ns = [](const timeval& t) { return static_cast<std::uint64_t>(t.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(t.tv_usec) * 1000; };
    return ns(ru.ru_utime) + ns(ru.ru_stime);
  }
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return 0;
  // After "pid (comm) ": state is field 3; utime and stime are fields 14 and 15.
  std::istringstream rest(line.substr(line.rfind(')') + 2));
  std::string field;
  std::uint64_t utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return (utime + stime) * (1'000'000'000ull / static_cast<std::uint64_t>(sysconf(_SC_CLK_TCK)));
}

int only_child() {
  std::ifstream children("/proc/self/task/" + std::to_string(getpid()) + "/children");
  int pid = 0;
  children >> pid;
  return pid;
}

std::vector<double> Samples::take(int limit) const {
  const int n = std::min({count.load(), limit, kMax});
  return std::vector<double>(ns, ns + std::max(n, 0));
}

bool reap(int pid) {
  if (pid <= 0) return false;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return false;
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

bool read_byte(int fd, int ms) {
  pollfd p{fd, POLLIN, 0};
  char c;
  return poll(&p, 1, ms) == 1 && read(fd, &c, 1) == 1;
}

void write_byte(int fd) {
  const char c = 1;
  (void)!write(fd, &c, 1);
}

std::uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

std::vector<std::string> split(const std::string& csv) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= csv.size()) {
    const std::size_t end = std::min(csv.find(',', start), csv.size());
    if (end > start) out.push_back(csv.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

}  // namespace sbetcd
