// Child processes for tool tests: spawn with pipes on stdin/stdout/stderr, read lines and wait
// for exit with deadlines (poll on pipes and pidfds; nothing sleeps).
//
// Process safety: every pipe is close-on-exec, so a child holds only its own three ends; closing
// a child's stdin is therefore an EOF it really sees. A Child that goes out of scope while its
// process still runs kills it (SIGKILL) and reaps it, so a failed assertion leaks no process.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace sbtest {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// The default patience for things that should happen promptly; generous, for loaded machines.
inline constexpr auto kPatience = 30s;  // a deadline, not a wait: generous for sanitizer builds on a loaded machine
inline Clock::time_point soon() { return Clock::now() + kPatience; }

// Buffered line reading from a pipe.
class LineReader {
 public:
  explicit LineReader(int fd = -1) : fd_(fd) {}
  // The next line without its newline; nullopt at EOF or when the deadline passes first.
  std::optional<std::string> next(Clock::time_point deadline);
  // Everything until EOF (nullopt if the deadline passes first), including what is buffered.
  std::optional<std::string> rest(Clock::time_point deadline);
  bool eof() const { return eof_; }

 private:
  bool fill(Clock::time_point deadline);  // false at EOF or deadline
  int fd_;
  std::string buf_;
  bool eof_ = false;
};

class Child {
 public:
  // Starts `path` with `args`. With keep_stdin, stdin is a pipe the test closes (close_stdin) to
  // send EOF; otherwise it is /dev/null.
  static Child spawn(const std::string& path, const std::vector<std::string>& args, bool keep_stdin = false);
  Child(Child&& other) noexcept;
  Child& operator=(Child&&) = delete;
  ~Child();

  pid_t pid() const { return pid_; }
  LineReader& out() { return out_; }
  LineReader& err() { return err_; }
  int stdout_fd() const { return out_fd_; }
  void close_stdin();
  // Waits for the exit; returns the exit code (128 + signal if killed), or nullopt at the deadline.
  std::optional<int> wait(Clock::time_point deadline);

 private:
  Child() = default;
  pid_t pid_ = -1;
  int in_ = -1, out_fd_ = -1, err_fd_ = -1;
  LineReader out_, err_;
};

struct RunResult {
  int code = -1;  // exit code; -1 if it did not finish before the deadline
  std::string out, err;
};

// Runs to completion (stdin = /dev/null), collecting stdout and stderr.
RunResult run(const std::string& path, const std::vector<std::string>& args, Clock::time_point deadline = soon());

// Waits for `fd` to become readable or hang up, at most until `deadline`. Returns true if it did.
bool wait_readable(int fd, Clock::time_point deadline);

}  // namespace sbtest
