#include "liveness.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

namespace sessionbroker::detail {
namespace {

struct Stat {
  char state;
  std::uint64_t start_time;
};

bool exited(char state) { return state == 'Z' || state == 'X' || state == 'x'; }

// State and starttime of /proc/<path>/stat (a process or one of its threads), or nullopt if the
// file cannot be read or parsed.
std::optional<Stat> read_stat(const char* path) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buf[1024];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return std::nullopt;
  buf[n] = '\0';
  // comm may contain spaces and ')': the fields after it start after the last ')'.
  const char* p = std::strrchr(buf, ')');
  if (!p || p[1] != ' ' || p[2] == '\0') return std::nullopt;
  const char state = p[2];
  // After ") " come fields 3 (state) .. ; starttime is field 22, i.e. the 20th token after state.
  const char* q = p + 2;
  for (int field = 3; field < 22; ++field) {
    q = std::strchr(q, ' ');
    if (!q) return std::nullopt;
    ++q;
  }
  return Stat{state, std::strtoull(q, nullptr, 10)};
}

std::optional<Stat> read_process_stat(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  return read_stat(path);
}

// Whether any thread of pid's thread group has not exited (/proc/<pid>/task/*/stat), or nullopt
// if the task directory cannot be read. Asked only when the leader shows an exited state: the
// leader stays listed (as a zombie) until the last thread has gone.
std::optional<bool> threads_left(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/task", static_cast<int>(pid));
  DIR* dir = ::opendir(path);
  if (!dir) return std::nullopt;
  bool left = false;
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    char task[sizeof path + sizeof e->d_name + 8];
    std::snprintf(task, sizeof task, "/proc/%d/task/%s/stat", static_cast<int>(pid), e->d_name);
    const auto st = read_stat(task);
    if (st && !exited(st->state)) {  // a thread gone between readdir and open has no stat: exited
      left = true;
      break;
    }
  }
  ::closedir(dir);
  return left;
}

}  // namespace

std::optional<std::uint64_t> process_start_time(pid_t pid) {
  const auto st = read_process_stat(pid);
  if (!st) return std::nullopt;
  if (exited(st->state) && threads_left(pid) == false) return std::nullopt;  // exited, not yet reaped
  return st->start_time;
}

Liveness judge_liveness(const ProcessFacts& f, std::uint64_t start_time) {
  if (f.kill_errno == ESRCH) return Liveness::kDead;  // no such pid
  if (!f.start_time) return Liveness::kAlive;         // the pid exists (or kill failed oddly): cannot tell more
  if (*f.start_time != start_time) return Liveness::kDead;  // the pid was reused
  if (f.exited_state && f.threads_left == false) return Liveness::kDead;  // the whole group has exited
  return Liveness::kAlive;
}

Liveness check_liveness(pid_t pid, std::uint64_t start_time) {
  if (pid <= 0) return Liveness::kDead;
  ProcessFacts f;
  f.kill_errno = ::kill(pid, 0) == 0 ? 0 : errno;
  if (f.kill_errno == ESRCH) return judge_liveness(f, start_time);
  if (const auto st = read_process_stat(pid)) {
    f.start_time = st->start_time;
    f.exited_state = exited(st->state);
    if (f.exited_state && st->start_time == start_time) f.threads_left = threads_left(pid);
  }
  return judge_liveness(f, start_time);
}

}  // namespace sessionbroker::detail
