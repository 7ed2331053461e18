// Process plumbing for the demo: pipes, output that survives fork(), waiting with deadlines, and
// the session-broker child. Nothing here is specific to sessionbroker's API; demo.cpp is the part
// worth reading first.
//
// Process safety: say() writes each line with one write(2), so lines of concurrent processes do not
// interleave; nothing here buffers output, so fork() never duplicates pending text.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

namespace demo {

using Clock = std::chrono::steady_clock;

// Writes one line (a newline is added) to stdout in a single write.
void say_line(std::string_view line);
template <class... Args>
void say(fmt::format_string<Args...> f, Args&&... args) {
  say_line(fmt::format(f, std::forward<Args>(args)...));
}

// A pipe whose ends close on destruction. Both ends are close-on-exec.
class Pipe {
 public:
  Pipe();
  ~Pipe();
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  Pipe(Pipe&& other) noexcept;

  bool ok() const { return fds_[0] >= 0; }
  int read_end() const { return fds_[0]; }
  int write_end() const { return fds_[1]; }
  void close_read();
  void close_write();

 private:
  int fds_[2] = {-1, -1};
};

bool write_all(int fd, std::string_view data);

// Reads every readable pipe in `fds` until each reports EOF, appending to the matching `out`
// string. Returns false if the deadline passes first.
bool read_all_until_eof(const std::vector<int>& fds, std::vector<std::string>& out, Clock::time_point deadline);

// Waits until `fd` reports EOF (its writers closed it). Returns false at the deadline.
bool wait_for_eof(int fd, Clock::time_point deadline);

// Waits for `pid` to exit (pidfd + poll); returns its wait status, or nullopt at the deadline.
std::optional<int> wait_exit(pid_t pid, Clock::time_point deadline);

std::string describe_wait_status(int status);

// The directory holding this executable, from /proc/self/exe.
std::string self_dir();

// A session-broker child that owns a private segment and removes it when it stops.
class BrokerProcess {
 public:
  // Starts `path` and waits (up to `deadline`) for it to report "ready" on a pipe. Its log goes to
  // our stderr when `show_log`, else to /dev/null. The broker gets SIGTERM if the demo dies.
  static std::optional<BrokerProcess> start(const std::string& path, const std::string& segment, bool show_log,
                                            Clock::time_point deadline, std::string& error);
  BrokerProcess(BrokerProcess&& other) noexcept : pid_(other.pid_) { other.pid_ = -1; }
  BrokerProcess(const BrokerProcess&) = delete;
  BrokerProcess& operator=(const BrokerProcess&) = delete;
  ~BrokerProcess();  // stops it if still running

  // SIGTERM, then wait for the exit. Returns true if it exited with status 0.
  bool stop(Clock::time_point deadline, std::string& error);
  pid_t pid() const { return pid_; }

 private:
  explicit BrokerProcess(pid_t pid) : pid_(pid) {}
  pid_t pid_;
};

}  // namespace demo
