#include "terminal.hpp"

#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>

#include "clock.hpp"

namespace sessionctl {
namespace {

constexpr const char* kEnterScreen = "\x1b[?1049h\x1b[?25l";  // alternate screen, hide cursor
constexpr const char* kLeaveScreen = "\x1b[?25h\x1b[?1049l";  // show cursor, main screen (last: see tests)

// Set by the handler, consumed by StopSignals::wait(). One flag per kind, so a resize after a
// quit never hides the quit. Lock-free atomics are safe to touch in a signal handler.
std::atomic<bool> g_quit{false}, g_resize{false}, g_suspend{false};
static_assert(std::atomic<bool>::is_always_lock_free);

extern "C" void note_signal(int sig) {
  if (sig == SIGWINCH) g_resize.store(true);
  else if (sig == SIGTSTP) g_suspend.store(true);
  else g_quit.store(true);
}

bool take(std::atomic<bool>& flag) { return flag.exchange(false); }

timespec until(std::uint64_t deadline_ns) {
  const std::uint64_t now = sessionbroker::detail::mono_ns();
  const std::uint64_t left = deadline_ns > now ? deadline_ns - now : 0;
  return {static_cast<time_t>(left / 1'000'000'000u), static_cast<long>(left % 1'000'000'000u)};
}

// Reads what is there; true if it holds q or Q. Sets `input` to -1 at EOF or on an error.
bool read_quit_key(int& input) {
  char keys[64];
  const ssize_t n = read(input, keys, sizeof keys);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return false;
  if (n <= 0) {
    input = -1;
    return false;
  }
  return std::any_of(keys, keys + n, [](char k) { return k == 'q' || k == 'Q'; });
}

}  // namespace

ScreenSize screen_size(int fd) {
  winsize ws{};
  if (ioctl(fd, TIOCGWINSZ, &ws) != 0 || ws.ws_row == 0 || ws.ws_col == 0) return {};
  return {ws.ws_row, ws.ws_col};
}

bool write_all(int fd, const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

// ---- FullScreen ----

void FullScreen::enter() {
  if (entered_) return;
  termios t{};
  if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &t) == 0) {
    saved_ = t;
    t.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);  // ISIG stays: Ctrl-C is SIGINT, Ctrl-Z SIGTSTP
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    tcsetattr(STDIN_FILENO, TCSANOW, &t);
  }
  write_all(STDOUT_FILENO, kEnterScreen);
  entered_ = true;
}

void FullScreen::leave() {
  if (!entered_) return;
  write_all(STDOUT_FILENO, kLeaveScreen);
  if (saved_) tcsetattr(STDIN_FILENO, TCSANOW, &*saved_);
  saved_.reset();
  entered_ = false;
}

// Every line is cleared before it is written and the last one gets no line feed, so a frame of
// exactly one screen never scrolls and a line of exactly the width never wraps.
void FullScreen::draw(const std::vector<std::string>& lines) {
  std::string out = "\x1b[H";
  for (std::size_t i = 0; i < lines.size(); ++i) {
    out += "\x1b[2K";
    out += lines[i];
    if (i + 1 < lines.size()) out += "\r\n";
  }
  out += "\x1b[J";
  write_all(STDOUT_FILENO, out);
}

// ---- StopSignals ----

StopSignals::StopSignals(bool job_control) : handled_{SIGINT, SIGTERM, SIGHUP, SIGQUIT} {
  if (job_control) handled_.insert(handled_.end(), {SIGWINCH, SIGTSTP});
  for (auto* flag : {&g_quit, &g_resize, &g_suspend}) flag->store(false);
  sigset_t block;
  sigemptyset(&block);
  for (int sig : handled_) sigaddset(&block, sig);
  sigprocmask(SIG_BLOCK, &block, &old_mask_);
  wait_mask_ = old_mask_;  // even if our parent blocked one of them: wait() must hear it
  for (int sig : handled_) sigdelset(&wait_mask_, sig);
  struct sigaction sa {};
  sa.sa_handler = note_signal;
  sigemptyset(&sa.sa_mask);
  old_actions_.resize(handled_.size());
  for (std::size_t i = 0; i < handled_.size(); ++i) sigaction(handled_[i], &sa, &old_actions_[i]);
}

// Unblocks first, with our handler still in place: a signal still pending is caught, not fatal.
StopSignals::~StopSignals() {
  sigprocmask(SIG_SETMASK, &old_mask_, nullptr);
  for (std::size_t i = 0; i < handled_.size(); ++i) sigaction(handled_[i], &old_actions_[i], nullptr);
}

StopSignals::Event StopSignals::wait(int& input, std::uint64_t deadline_ns) {
  for (;;) {
    if (take(g_quit)) return Event::kQuit;
    if (take(g_suspend)) return Event::kSuspend;
    if (take(g_resize)) return Event::kResize;
    const timespec left = until(deadline_ns);
    if (left.tv_sec == 0 && left.tv_nsec == 0) return Event::kTick;
    pollfd p{input, POLLIN, 0};  // poll ignores a negative fd
    const int rc = ppoll(&p, 1, &left, &wait_mask_);
    if (rc < 0 && errno != EINTR) return Event::kQuit;  // cannot wait: better to stop than to spin
    if (rc > 0 && input >= 0 && p.revents != 0 && read_quit_key(input)) return Event::kQuit;
  }
}

void StopSignals::stop_self() {
  struct sigaction dfl {}, ours {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(SIGTSTP, &dfl, &ours);
  sigset_t tstp;
  sigemptyset(&tstp);
  sigaddset(&tstp, SIGTSTP);
  sigprocmask(SIG_UNBLOCK, &tstp, nullptr);
  raise(SIGTSTP);  // stops here until SIGCONT
  sigprocmask(SIG_BLOCK, &tstp, nullptr);
  sigaction(SIGTSTP, &ours, nullptr);
}

}  // namespace sessionctl
