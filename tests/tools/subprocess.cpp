#include "subprocess.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <stdexcept>
#include <utility>

namespace sbtest {
namespace {

int poll_ms(Clock::time_point deadline) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::clamp<long long>(left.count(), 0, 60'000));
}

void close_fd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

struct PipeFds {
  int r = -1, w = -1;
};

PipeFds make_pipe() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  return {fds[0], fds[1]};
}

int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// In the child between fork and exec: only async-signal-safe calls.
[[noreturn]] void exec_child(char* const* argv, int in, int out, int err) {
  dup2(in, STDIN_FILENO);  // dup2 clears close-on-exec on the copies
  dup2(out, STDOUT_FILENO);
  dup2(err, STDERR_FILENO);
  execv(argv[0], argv);
  _exit(127);
}

}  // namespace

bool wait_readable(int fd, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    const int rc = poll(&p, 1, poll_ms(deadline));
    if (rc < 0 && errno == EINTR) continue;
    return rc > 0;
  }
}

// ---- LineReader ----

bool LineReader::fill(Clock::time_point deadline) {
  if (eof_ || fd_ < 0) return false;
  if (!wait_readable(fd_, deadline)) return false;
  char chunk[4096];
  ssize_t n;
  while ((n = read(fd_, chunk, sizeof chunk)) < 0 && errno == EINTR) {
  }
  if (n <= 0) {
    eof_ = true;
    return false;
  }
  buf_.append(chunk, static_cast<std::size_t>(n));
  return true;
}

std::optional<std::string> LineReader::next(Clock::time_point deadline) {
  for (;;) {
    if (auto nl = buf_.find('\n'); nl != std::string::npos) {
      std::string line = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      return line;
    }
    if (!fill(deadline)) return std::nullopt;
  }
}

std::optional<std::string> LineReader::rest(Clock::time_point deadline) {
  while (fill(deadline)) {
  }
  if (!eof_ && fd_ >= 0) return std::nullopt;  // the deadline passed
  return std::exchange(buf_, {});
}

// ---- Child ----

Child Child::spawn(const std::string& path, const std::vector<std::string>& args, bool keep_stdin) {
  PipeFds in = keep_stdin ? make_pipe() : PipeFds{open("/dev/null", O_RDONLY | O_CLOEXEC), -1};
  PipeFds out = make_pipe(), err = make_pipe();
  std::vector<std::string> all{path};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) exec_child(argv.data(), in.r, out.w, err.w);
  close_fd(in.r);
  close_fd(out.w);
  close_fd(err.w);
  Child c;
  c.pid_ = pid;
  c.in_ = in.w;
  c.out_fd_ = out.r;
  c.err_fd_ = err.r;
  c.out_ = LineReader(out.r);
  c.err_ = LineReader(err.r);
  return c;
}

Child::Child(Child&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      in_(std::exchange(other.in_, -1)),
      out_fd_(std::exchange(other.out_fd_, -1)),
      err_fd_(std::exchange(other.err_fd_, -1)),
      out_(std::move(other.out_)),
      err_(std::move(other.err_)) {}

Child::~Child() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    (void)wait(Clock::now() + kPatience);
  }
  close_fd(in_);
  close_fd(out_fd_);
  close_fd(err_fd_);
}

void Child::close_stdin() { close_fd(in_); }

std::optional<int> Child::wait(Clock::time_point deadline) {
  if (pid_ <= 0) return std::nullopt;
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
  if (pidfd >= 0) {
    const bool exited = wait_readable(pidfd, deadline);
    close(pidfd);
    if (!exited) return std::nullopt;
  }
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0)
    if (errno != EINTR) return std::nullopt;
  pid_ = -1;
  return exit_code(status);
}

RunResult run(const std::string& path, const std::vector<std::string>& args, Clock::time_point deadline) {
  Child c = Child::spawn(path, args);
  RunResult r;
  // Read both pipes to EOF before waiting, so a chatty child never blocks on a full pipe. stderr
  // is read after stdout; the tools write little to it, well under a pipe's capacity.
  auto out = c.out().rest(deadline);
  auto err = c.err().rest(deadline);
  auto code = c.wait(deadline);
  r.out = out.value_or("");
  r.err = err.value_or("");
  r.code = code.value_or(-1);
  return r;
}

}  // namespace sbtest
