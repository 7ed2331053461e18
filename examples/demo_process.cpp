#include "demo_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <utility>

namespace demo {
namespace {

int poll_ms(Clock::time_point deadline) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::clamp<long long>(left.count(), 0, 60'000));
}

void close_fd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

}  // namespace

void say_line(std::string_view line) {
  std::string s(line);
  s += '\n';
  (void)write_all(STDOUT_FILENO, s);
}

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// ---- Pipe ----

Pipe::Pipe() {
  if (pipe2(fds_, O_CLOEXEC) != 0) fds_[0] = fds_[1] = -1;
}
Pipe::~Pipe() {
  close_read();
  close_write();
}
Pipe::Pipe(Pipe&& other) noexcept {
  std::swap(fds_[0], other.fds_[0]);
  std::swap(fds_[1], other.fds_[1]);
}
void Pipe::close_read() { close_fd(fds_[0]); }
void Pipe::close_write() { close_fd(fds_[1]); }

// ---- waiting ----

bool read_all_until_eof(const std::vector<int>& fds, std::vector<std::string>& out, Clock::time_point deadline) {
  out.resize(fds.size());
  std::vector<pollfd> open;
  std::vector<std::size_t> which;
  for (std::size_t i = 0; i < fds.size(); ++i) {
    open.push_back({fds[i], POLLIN, 0});
    which.push_back(i);
  }
  while (!open.empty()) {
    const int rc = poll(open.data(), open.size(), poll_ms(deadline));
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) return false;  // deadline (or a poll failure, which we cannot wait through)
    for (std::size_t k = open.size(); k-- > 0;) {
      if (open[k].revents == 0) continue;
      char buf[4096];
      const ssize_t n = read(open[k].fd, buf, sizeof buf);
      if (n > 0) {
        out[which[k]].append(buf, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        open.erase(open.begin() + static_cast<std::ptrdiff_t>(k));
        which.erase(which.begin() + static_cast<std::ptrdiff_t>(k));
      }
    }
  }
  return true;
}

bool wait_for_eof(int fd, Clock::time_point deadline) {
  std::vector<std::string> ignored;
  return read_all_until_eof({fd}, ignored, deadline);
}

std::optional<int> wait_exit(pid_t pid, Clock::time_point deadline) {
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd >= 0) {
    pollfd p{pidfd, POLLIN, 0};
    int rc;
    while ((rc = poll(&p, 1, poll_ms(deadline))) < 0 && errno == EINTR) {
    }
    close(pidfd);
    if (rc == 0) return std::nullopt;
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return std::nullopt;
  }
  return status;
}

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return fmt::format("exit status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("killed by signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)));
  return fmt::format("wait status {}", status);
}

std::string self_dir() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  std::string path(buf, static_cast<std::size_t>(n));
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

// ---- BrokerProcess ----

namespace {

// Reads the ready pipe until "ready" arrives, EOF (the broker died) or the deadline.
bool await_ready(int fd, Clock::time_point deadline) {
  std::string got;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    const int rc = poll(&p, 1, poll_ms(deadline));
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) return false;
    char buf[64];
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) return false;
    got.append(buf, static_cast<std::size_t>(n));
    if (got.find("ready\n") != std::string::npos) return true;
  }
}

// In the child, between fork and exec: only async-signal-safe calls.
[[noreturn]] void exec_broker(char* const* argv, int ready_fd, int log_fd, pid_t parent) {
  prctl(PR_SET_PDEATHSIG, SIGTERM);  // the broker stops (and removes the segment) if we die
  if (getppid() != parent) _exit(1);  // we died before the line above took effect
  fcntl(ready_fd, F_SETFD, 0);        // this one end must survive exec
  if (log_fd >= 0) {
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
  }
  execv(argv[0], argv);
  _exit(127);
}

}  // namespace

std::optional<BrokerProcess> BrokerProcess::start(const std::string& path, const std::string& segment, bool show_log,
                                                  Clock::time_point deadline, std::string& error) {
  Pipe ready;
  const int log_fd = show_log ? -1 : open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (!ready.ok() || (!show_log && log_fd < 0)) {
    error = fmt::format("pipe or /dev/null: {}", std::strerror(errno));
    return std::nullopt;
  }
  std::vector<std::string> args{path, "--segment", segment, "--remove-on-exit", "--ready-fd",
                                std::to_string(ready.write_end())};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) exec_broker(argv.data(), ready.write_end(), log_fd, parent);
  if (log_fd >= 0) close(log_fd);
  if (pid < 0) {
    error = fmt::format("fork: {}", std::strerror(errno));
    return std::nullopt;
  }
  BrokerProcess broker(pid);
  ready.close_write();  // else EOF never comes if the broker dies
  if (!await_ready(ready.read_end(), deadline)) {
    std::string why;
    (void)broker.stop(Clock::now() + std::chrono::seconds(2), why);
    error = fmt::format("{} did not report ready ({}); run with --verbose to see its log", path,
                        why.empty() ? "it was still starting" : why);
    return std::nullopt;
  }
  return broker;
}

BrokerProcess::~BrokerProcess() {
  std::string ignored;
  if (pid_ > 0) (void)stop(Clock::now() + std::chrono::seconds(5), ignored);
}

bool BrokerProcess::stop(Clock::time_point deadline, std::string& error) {
  const pid_t pid = std::exchange(pid_, -1);
  if (pid <= 0) return true;
  kill(pid, SIGTERM);
  auto status = wait_exit(pid, deadline);
  if (!status) {
    kill(pid, SIGKILL);
    status = wait_exit(pid, Clock::now() + std::chrono::seconds(5));
    error = "session-broker did not stop after SIGTERM; killed it";
    return false;
  }
  if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    error = fmt::format("session-broker ended with {}", describe_wait_status(*status));
    return false;
  }
  return true;
}

}  // namespace demo
