#include "process.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>

#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace sbtest {
namespace {

bool wait_readable(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  for (;;) {
    int rc = poll(&p, 1, static_cast<int>(timeout.count()));
    if (rc < 0 && errno == EINTR) continue;
    return rc > 0;
  }
}

}  // namespace

Channel::Channel() {
  if (pipe2(to_child_, O_CLOEXEC) != 0 || pipe2(to_parent_, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
}

Channel::~Channel() {
  if (in_ >= 0) close(in_);
  if (out_ >= 0) close(out_);
}

void Channel::as_parent() {
  close(to_child_[0]);
  close(to_parent_[1]);
  in_ = to_parent_[0];
  out_ = to_child_[1];
}

void Channel::as_child() {
  close(to_child_[1]);
  close(to_parent_[0]);
  in_ = to_child_[0];
  out_ = to_parent_[1];
}

void Channel::send(const std::string& line) {
  std::string l = line + "\n";
  const char* p = l.data();
  std::size_t left = l.size();
  while (left > 0) {
    ssize_t n = write(out_, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

std::optional<std::string> Channel::receive(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (auto nl = buffer_.find('\n'); nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || !wait_readable(in_, left)) return std::nullopt;
    char buf[512];
    ssize_t n = read(in_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    buffer_.append(buf, static_cast<std::size_t>(n));
  }
}

Child Child::spawn(std::function<int(Channel&)> fn) {
  auto channel = std::make_unique<Channel>();
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork");
  if (pid == 0) {
    channel->as_child();
    int code = 99;
    try {
      code = fn(*channel);
    } catch (...) {
    }
    std::fflush(nullptr);
    _exit(code);
  }
  channel->as_parent();
  return Child(pid, std::move(channel));
}

Child::Child(pid_t pid, std::unique_ptr<Channel> channel)
    : pid_(pid), pidfd_(static_cast<int>(syscall(SYS_pidfd_open, pid, 0))), channel_(std::move(channel)) {}

Child::Child(Child&& o) noexcept
    : pid_(o.pid_), pidfd_(o.pidfd_), channel_(std::move(o.channel_)), reaped_(o.reaped_) {
  o.pid_ = -1;
  o.pidfd_ = -1;
  o.reaped_ = true;
}

Child::~Child() {
  if (!reaped_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (pidfd_ >= 0) close(pidfd_);
}

std::optional<int> Child::wait(std::chrono::milliseconds timeout) {
  if (reaped_) return std::nullopt;
  if (pidfd_ >= 0 && !wait_readable(pidfd_, timeout)) return std::nullopt;
  int status = 0;
  if (waitpid(pid_, &status, 0) != pid_) return std::nullopt;
  reaped_ = true;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return std::nullopt;
}

void Child::kill9() { ::kill(pid_, SIGKILL); }

}  // namespace sbtest
