// detail::check_liveness with real processes: it may call a process dead only when it is sure
// (no such pid, the whole thread group has exited, or the pid now names a process with another
// start time). Everything it cannot tell counts as alive, because a waiter that believes a live
// holder dead takes its lock away and the holder's next commit fails with a stale token.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "eventually.hpp"
#include "liveness.hpp"
#include "main_thread_exit.hpp"
#include "process.hpp"

namespace sessionbroker::detail {
// Readable failures: "kDead" rather than a 4-byte object.
inline void PrintTo(Liveness l, std::ostream* os) { *os << (l == Liveness::kAlive ? "kAlive" : "kDead"); }
}  // namespace sessionbroker::detail

namespace sbtest {
namespace {

using sessionbroker::detail::check_liveness;
using sessionbroker::detail::Liveness;
using sessionbroker::detail::process_start_time;

// True once the whole thread group of `pid` has exited (a pidfd polls readable then), reaped or not.
bool group_exited(pid_t pid, std::chrono::milliseconds timeout = 10s) {
  const int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return false;
  pollfd p{fd, POLLIN, 0};
  const bool exited = poll(&p, 1, static_cast<int>(timeout.count())) == 1;
  close(fd);
  return exited;
}

// A child whose main thread has called pthread_exit() while a second thread waits for "exit" from
// the test, then ends the process. Returns once the leader shows as a zombie; `start` is the
// child's start time as the child itself read it while its main thread still ran.
Child spawn_zombie_leader(std::uint64_t& start) {
  auto child = Child::spawn([](Channel& ch) -> int {
    ch.send(std::to_string(process_start_time(getpid()).value_or(0)));
    std::thread([&ch] {
      ch.receive(60s);
      _exit(0);
    }).detach();
    exit_this_thread_keeping_stack();
  });
  start = std::stoull(child.channel().receive().value_or("0"));
  EXPECT_NE(start, 0u);
  EXPECT_TRUE(eventually([&] { return proc_state(child.pid()) == 'Z'; })) << "leader never became a zombie";
  return child;
}

// The bug: a process whose main thread called pthread_exit() shows `Z` in /proc/PID/stat while its
// other threads run; the old check took `Z` for "exited" and waiters reclaimed a live holder.
TEST(Liveness, ZombieLeaderWithLiveThreadsIsAlive) {
  std::uint64_t start = 0;
  auto child = spawn_zombie_leader(start);
  EXPECT_EQ(check_liveness(child.pid(), start), Liveness::kAlive);
  EXPECT_EQ(process_start_time(child.pid()), start) << "the start time of a live process must stay readable";
  child.channel().send("exit");
  EXPECT_EQ(child.wait(), 0);
}

// Once the last thread has gone too, the same zombie is dead although nobody has reaped it yet
// (the stat file is still there and shows `Z`): the thread-group test must not keep it alive.
TEST(Liveness, WhollyExitedUnreapedProcessIsDead) {
  std::uint64_t start = 0;
  auto child = spawn_zombie_leader(start);
  child.channel().send("exit");
  ASSERT_TRUE(group_exited(child.pid()));
  EXPECT_EQ(proc_state(child.pid()), 'Z') << "the test needs the child exited but not reaped";
  EXPECT_EQ(check_liveness(child.pid(), start), Liveness::kDead);
  EXPECT_EQ(process_start_time(child.pid()), std::nullopt);
  EXPECT_EQ(child.wait(), 0);
}

// kill(pid, 0) says ESRCH once the child is reaped.
TEST(Liveness, ReapedPidIsDead) {
  auto child = Child::spawn([](Channel&) { return 0; });
  const pid_t pid = child.pid();
  ASSERT_EQ(child.wait(), 0);
  EXPECT_EQ(check_liveness(pid, 1), Liveness::kDead);
  EXPECT_EQ(check_liveness(0, 1), Liveness::kDead) << "pid 0 never names a client";
}

// Pid reuse: a live process with another start time than the one recorded is not the client.
TEST(Liveness, LiveProcessWithAnotherStartTimeIsDead) {
  auto child = Child::spawn([](Channel& ch) {
    ch.receive(60s);
    return 0;
  });
  const auto start = process_start_time(child.pid());
  ASSERT_TRUE(start);
  EXPECT_EQ(check_liveness(child.pid(), *start), Liveness::kAlive);
  EXPECT_EQ(check_liveness(child.pid(), *start + 1), Liveness::kDead);
  child.channel().send("exit");
  EXPECT_EQ(child.wait(), 0);
}

// Linux 5.8 and later give each procfs mount its own hidepid option; before, mounting /proc again
// with hidepid changed the options of every /proc of the pid namespace, this test's host included.
bool per_mount_hidepid() {
  utsname u{};
  int major = 0, minor = 0;
  if (uname(&u) != 0 || std::sscanf(u.release, "%d.%d", &major, &minor) != 2) return false;
  return major > 5 || (major == 5 && minor >= 8);
}

// The documented service setup: broker and clients under different users, /proc mounted with
// hidepid=2. Then kill(pid, 0) fails with EPERM (the pid exists, it is not ours) and the owner's
// /proc/PID/stat is invisible while our own is readable; the old check took exactly that for
// "dead". The checker here runs as `nobody` in a mount namespace of its own with a hidepid=2 /proc,
// and asks about this (root) test process, which is certainly alive.
// REQUIRES: root (unshare of the mount namespace, mount, setuid), Linux >= 5.8
TEST(Liveness, ProcessOfAnotherUserBehindHidepidIsAlive) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to mount /proc with hidepid and to change user";
  if (!per_mount_hidepid()) GTEST_SKIP() << "needs per-mount hidepid (Linux 5.8)";
  const pid_t owner = getpid();
  const auto start = process_start_time(owner);
  ASSERT_TRUE(start);
  auto checker = Child::spawn([&](Channel& ch) {
    if (unshare(CLONE_NEWNS) != 0 || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2") != 0) {
      ch.send(std::string("skip: cannot mount /proc with hidepid=2: ") + std::strerror(errno));
      return 0;
    }
    if (setgid(65534) != 0 || setuid(65534) != 0) {
      ch.send(std::string("skip: cannot become nobody: ") + std::strerror(errno));
      return 0;
    }
    const bool hidden = !std::ifstream("/proc/" + std::to_string(owner) + "/stat");
    const bool eperm = ::kill(owner, 0) != 0 && errno == EPERM;
    if (!hidden || !eperm) {
      ch.send(std::string("skip: setup failed: owner's stat ") + (hidden ? "hidden" : "visible") + ", kill " +
              (eperm ? "EPERM" : "not EPERM"));
      return 0;
    }
    ch.send(check_liveness(owner, *start) == Liveness::kAlive ? "alive" : "dead");
    return 0;
  });
  const auto answer = checker.channel().receive().value_or("no answer");
  EXPECT_EQ(checker.wait(), 0);
  if (answer.rfind("skip: ", 0) == 0) GTEST_SKIP() << answer.substr(6);
  EXPECT_EQ(answer, "alive");
}

// The decision alone, case by case, as check_liveness reads the facts: it covers what the tests
// above cannot set up on every machine (EPERM with or without a readable stat, odd kill errors).
// Each row that says kAlive is one the old check answered kDead for, or one that must stay so.
TEST(Liveness, DecisionErrsOnlyTowardsAlive) {
  using sessionbroker::detail::judge_liveness;
  using sessionbroker::detail::ProcessFacts;
  constexpr std::uint64_t kStart = 4242;
  struct Case {
    const char* what;
    ProcessFacts facts;
    Liveness expected;
  };
  const Case cases[] = {
      {"no such pid", {ESRCH, std::nullopt, false, std::nullopt}, Liveness::kDead},
      {"no such pid, stale stat read", {ESRCH, kStart, false, std::nullopt}, Liveness::kDead},
      {"running, same start", {0, kStart, false, std::nullopt}, Liveness::kAlive},
      {"running, other start (pid reused)", {0, kStart + 1, false, std::nullopt}, Liveness::kDead},
      {"another user's, stat readable", {EPERM, kStart, false, std::nullopt}, Liveness::kAlive},
      {"another user's, reused pid", {EPERM, kStart + 1, false, std::nullopt}, Liveness::kDead},
      {"another user's behind hidepid", {EPERM, std::nullopt, false, std::nullopt}, Liveness::kAlive},
      {"exists, stat unreadable", {0, std::nullopt, false, std::nullopt}, Liveness::kAlive},
      {"odd kill error, stat unreadable", {EINVAL, std::nullopt, false, std::nullopt}, Liveness::kAlive},
      {"zombie leader, threads running", {0, kStart, true, true}, Liveness::kAlive},
      {"zombie leader, threads unknown", {0, kStart, true, std::nullopt}, Liveness::kAlive},
      {"zombie, whole group exited", {0, kStart, true, false}, Liveness::kDead},
      {"zombie of another user, exited", {EPERM, kStart, true, false}, Liveness::kDead},
      {"zombie with another start time", {0, kStart + 1, true, std::nullopt}, Liveness::kDead},
  };
  for (const auto& c : cases) EXPECT_EQ(judge_liveness(c.facts, kStart), c.expected) << c.what;
}

}  // namespace
}  // namespace sbtest
