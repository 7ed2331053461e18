// watch: a live view of the segment's statistics, redrawn every --interval (see watch_frame.cpp).
//
// On a terminal it takes the whole screen (terminal.hpp): q, Ctrl-C, SIGTERM or a hang-up end it
// with exit status 0 and the terminal as it was; Ctrl-Z suspends it properly. When stdout is not a
// terminal, or with --once, it prints plain frames (no escapes) one interval apart, each covering
// that interval; --once prints one and exits.
//
// Process safety: like stats, watch neither attaches nor takes a mutex; it only reads.
// Waiting: one ppoll() on stdin and the stop signals per interval, with the time left to the next
// frame as its timeout; frames are due at fixed times, so a key press does not shift them.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <string>

#include <fmt/format.h>

#include "commands.hpp"
#include "help.hpp"
#include "liveness.hpp"
#include "segment.hpp"
#include "stats.hpp"
#include "terminal.hpp"
#include "watch_frame.hpp"

namespace sessionctl {
namespace {

namespace detail = sessionbroker::detail;
using namespace std::chrono_literals;

constexpr std::size_t kTopSessions = 64;  // more than any screen shows
constexpr std::chrono::milliseconds kMinInterval{10};

struct WatchArgs {
  std::string segment;
  std::chrono::milliseconds interval{1000};
  bool once = false;
};

std::string format_uptime(std::uint64_t s) {
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  if (s < 86400) return fmt::format("{}h{:02}m", s / 3600, s % 3600 / 60);
  return fmt::format("{}d{:02}h", s / 86400, s % 86400 / 3600);
}

// The broker's uptime from /proc (start time in clock ticks since boot, against /proc/uptime).
// The header's broker pid is informational: a broker that died without clearing it shows as
// "not running" (or, if its pid was reused, as the uptime of the new process).
std::string broker_text(std::int32_t pid) {
  if (pid <= 0) return "no broker";
  const auto start_ticks = detail::process_start_time(pid);
  double since_boot = 0;
  if (!start_ticks || !(std::ifstream("/proc/uptime") >> since_boot)) return fmt::format("broker {} (not running)", pid);
  const double started = static_cast<double>(*start_ticks) / static_cast<double>(sysconf(_SC_CLK_TCK));
  return fmt::format("broker {} up {}", pid, format_uptime(since_boot > started ? static_cast<std::uint64_t>(since_boot - started) : 0));
}

class Watcher {
 public:
  Watcher(const detail::Segment& seg, const WatchArgs& a) : seg_(seg), args_(a), now_(collect()) {}

  std::vector<std::string> frame(ScreenSize size) const {
    const FrameHeader header{args_.segment, broker_text(now_.broker_pid), args_.interval};
    return watch_frame(header, now_, before_ ? &*before_ : nullptr, size);
  }
  // When the next snapshot is due (CLOCK_MONOTONIC ns).
  std::uint64_t due() const { return due_; }
  void advance() {
    before_ = std::move(now_);
    now_ = collect();
    due_ = std::max(due_ + interval_ns(), now_.taken_mono_ns);  // a late frame is not followed by a burst
  }

 private:
  detail::SegmentStats collect() const { return detail::collect_stats(seg_, kTopSessions); }
  std::uint64_t interval_ns() const { return static_cast<std::uint64_t>(std::chrono::nanoseconds(args_.interval).count()); }

  const detail::Segment& seg_;
  const WatchArgs& args_;
  detail::SegmentStats now_;
  std::optional<detail::SegmentStats> before_;
  std::uint64_t due_ = now_.taken_mono_ns + interval_ns();
};

int watch_full_screen(Watcher& w) {
  StopSignals signals(/*job_control=*/true);
  FullScreen screen;  // declared after `signals`: the terminal is restored while they are still ours
  int input = STDIN_FILENO;
  for (;;) {
    screen.draw(w.frame(screen_size(STDOUT_FILENO)));
    switch (signals.wait(input, w.due())) {
      case StopSignals::Event::kQuit:
        return kExitOk;
      case StopSignals::Event::kSuspend:
        screen.leave();
        signals.stop_self();
        screen.enter();
        break;
      case StopSignals::Event::kResize:
        break;
      case StopSignals::Event::kTick:
        w.advance();
        break;
    }
  }
}

int watch_plain(Watcher& w, bool once) {
  StopSignals signals(/*job_control=*/false);
  int no_input = -1;
  for (bool first = true;; first = false) {
    if (signals.wait(no_input, w.due()) == StopSignals::Event::kQuit) return kExitOk;
    w.advance();
    std::string text = first ? "" : "\n";
    for (const auto& line : w.frame(screen_size(STDOUT_FILENO))) text += line + '\n';
    if (!write_all(STDOUT_FILENO, text)) return kExitError;
    if (once) return kExitOk;
  }
}

int run_watch(const WatchArgs& a) {
  if (a.interval < kMinInterval) {
    fmt::print(stderr, "sessionctl: usage: --interval must be at least {}ms\n", kMinInterval.count());
    return kExitUsage;
  }
  if (auto refused = refuse_etcd_store(a.segment, "watch")) return *refused;
  auto seg = detail::Segment::open(a.segment);
  if (!seg) return fail(seg.status());
  std::fflush(stdout);  // frames go straight to the descriptor
  try {
    Watcher w(**seg, a);
    return !a.once && isatty(STDOUT_FILENO) ? watch_full_screen(w) : watch_plain(w, a.once);
  } catch (const std::exception& e) {  // the screen and the signals are restored by now
    fmt::print(stderr, "sessionctl: {}\n", e.what());
    return kExitError;
  }
}

}  // namespace

void add_watch_command(CLI::App& app, Action& action) {
  auto a = std::make_shared<WatchArgs>();
  auto* sub = app.add_subcommand("watch", "live view of lock rates, latencies, busiest sessions and clients (q quits)");
  add_store_option(*sub, a->segment);
  add_duration_option(*sub, "--interval", a->interval, "time between frames (at least 10ms)")->default_str("1s");
  sub->add_flag("--once", a->once, "print one plain frame covering one interval, then exit");
  set_man_page(*sub, {
      .description =
          "Shows the segment's statistics (see sessionctl stats) as a live view that fits 80x24: broker and "
          "capacities, grants, handoffs, revokes and timeouts per second, lock-wait and handoff latency p50/p99 "
          "over the last interval and overall, the most contended sessions (mode, holders, queue, waits) and the "
          "clients (locks held and queued, grants). It redraws every --interval; rates and \"last\" latencies "
          "cover the time since the previous frame.\n"
          "\n"
          "On a terminal it uses the alternate screen: q, Ctrl-C or SIGTERM end it with exit status 0 and give "
          "the terminal back as it was. When stdout is not a terminal, or with --once, it prints plain frames "
          "without escapes, one per interval (--once: one, then exits).\n"
          "\n"
          "Like stats, it does not attach and takes no mutex.\n",
      .examples =
          "  $ sessionctl watch --store shop --interval 500ms\n"
          "\n"
          "One frame for a log or a bug report:\n"
          "  $ sessionctl watch --once > frame.txt\n",
  });
  sub->callback([&action, a] { action = [a] { return run_watch(*a); }; });
}

}  // namespace sessionctl
