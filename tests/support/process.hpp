// Real processes for tests: fork a child running a function, talk to it over pipes, wait for it
// or kill it. Every wait has a deadline; nothing sleeps for a fixed time.
//
// A child never returns into GoogleTest: it runs its function and _exit()s with its result, so
// assertions belong in the parent; children report over their Channel.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <sys/types.h>

namespace sbtest {

using namespace std::chrono_literals;

// A line-oriented, bidirectional link between the test and one child, created before fork().
class Channel {
 public:
  Channel();
  ~Channel();
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // After fork: each side keeps its ends. Called by Child.
  void as_parent();
  void as_child();

  void send(const std::string& line);  // appends '\n'
  // The next line without its '\n', or nullopt at EOF or when the timeout passes.
  std::optional<std::string> receive(std::chrono::milliseconds timeout = 10s);

 private:
  int to_child_[2];
  int to_parent_[2];
  int in_ = -1, out_ = -1;
  std::string buffer_;
};

class Child {
 public:
  // Forks; the child runs fn(channel) and exits with its return value (or 99 on an exception).
  static Child spawn(std::function<int(Channel&)> fn);
  Child(Child&&) noexcept;
  ~Child();  // kills (SIGKILL) and reaps a child still running

  pid_t pid() const { return pid_; }
  Channel& channel() { return *channel_; }
  // Exit status (as by WEXITSTATUS, or 128 + signal), or nullopt if still running at the timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout = 10s);
  void kill9();

 private:
  Child(pid_t pid, std::unique_ptr<Channel> channel);
  pid_t pid_;
  int pidfd_;
  std::unique_ptr<Channel> channel_;
  bool reaped_ = false;
};

}  // namespace sbtest
