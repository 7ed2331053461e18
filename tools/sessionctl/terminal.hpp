// The terminal side of `sessionctl watch`: a full-screen view drawn with plain ANSI escapes, key
// presses read without echo, and the signals that end, suspend or resize the view.
//
// Invariants:
// - While a FullScreen is entered, the terminal is in the state it set up (alternate screen,
//   hidden cursor, stdin without echo and non-canonical); leave() and the destructor put back
//   exactly what it found. The destructor runs on every way out of watch (a return after q or a
//   stop signal, an exception caught by the command), so the shell gets its terminal back.
//   SIGKILL cannot be caught: `reset` repairs the terminal after one.
// - While a StopSignals exists, the signals it handles are blocked except inside wait(), whose
//   ppoll() unblocks them atomically: a signal that arrives between two waits is delivered at the
//   next one, never missed, and nothing else is ever interrupted by one.
#pragma once

#include <termios.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <signal.h>

namespace sessionctl {

struct ScreenSize {
  std::size_t rows = 24, cols = 80;
};
// The window size of terminal `fd` (TIOCGWINSZ), or 80x24 when it is not a terminal.
ScreenSize screen_size(int fd);

// Writes all of `text` to `fd`; false on an error.
bool write_all(int fd, const std::string& text);

class FullScreen {
 public:
  FullScreen() { enter(); }  // REQUIRES: stdout is a terminal
  ~FullScreen() { leave(); }
  FullScreen(const FullScreen&) = delete;
  FullScreen& operator=(const FullScreen&) = delete;

  void enter();
  void leave();  // idempotent
  // Replaces the screen's content with `lines` (REQUIRES: each fits the width, at most one screen).
  void draw(const std::vector<std::string>& lines);

 private:
  bool entered_ = false;
  std::optional<termios> saved_;  // stdin's settings before enter(), when stdin is a terminal
};

class StopSignals {
 public:
  enum class Event { kTick, kQuit, kResize, kSuspend };

  // Handles SIGINT, SIGTERM, SIGHUP and SIGQUIT (quit); with job_control also SIGWINCH (resize)
  // and SIGTSTP (suspend: the caller leaves the screen, calls stop_self(), then enters again).
  explicit StopSignals(bool job_control);
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // Waits until `deadline_ns` (CLOCK_MONOTONIC) or an event. `input` is a descriptor to read keys
  // from (q or Q quits), or -1; at its EOF it is set to -1 and no longer watched.
  Event wait(int& input, std::uint64_t deadline_ns);
  // Stops the process as SIGTSTP would have; returns once it is continued.
  void stop_self();

 private:
  std::vector<int> handled_;
  std::vector<struct sigaction> old_actions_;
  sigset_t old_mask_{};   // restored by the destructor
  sigset_t wait_mask_{};  // old_mask_ without the handled signals: the mask inside wait()
};

}  // namespace sessionctl
