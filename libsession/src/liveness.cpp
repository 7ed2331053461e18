#include "liveness.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace sessionbroker::detail {

std::optional<std::uint64_t> process_start_time(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buf[1024];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return std::nullopt;
  buf[n] = '\0';
  // comm may contain spaces and ')': the fields after it start after the last ')'.
  const char* p = std::strrchr(buf, ')');
  if (!p || p[1] != ' ') return std::nullopt;
  const char state = p[2];
  if (state == 'Z' || state == 'X' || state == 'x') return std::nullopt;  // exited, not yet reaped
  // After ") " come fields 3 (state) .. ; starttime is field 22, i.e. the 20th token after state.
  const char* q = p + 2;
  for (int field = 3; field < 22; ++field) {
    q = std::strchr(q, ' ');
    if (!q) return std::nullopt;
    ++q;
  }
  return std::strtoull(q, nullptr, 10);
}

Liveness check_liveness(pid_t pid, std::uint64_t start_time) {
  if (pid <= 0) return Liveness::kDead;
  if (::kill(pid, 0) != 0 && errno == ESRCH) return Liveness::kDead;
  auto now = process_start_time(pid);
  if (now) return *now == start_time ? Liveness::kAlive : Liveness::kDead;
  // No readable stat: gone or a zombie, unless /proc itself is unusable here (then we cannot be sure).
  return process_start_time(::getpid()) ? Liveness::kDead : Liveness::kAlive;
}

}  // namespace sessionbroker::detail
