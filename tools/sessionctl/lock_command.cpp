// lock: takes a session lock, prints its token, holds it, then gives it back.
//
// The holder is deliberately "busy": a revoke request does not make it release early (it only
// reports "revoke-requested" on stderr), so scripts and tests can build queues behind it. It holds
// for --hold, or until its standard input reaches EOF, which lets a parent process decide exactly
// when the lock goes. If the lock is taken away by force it reports "lost" and exits 5.
//
// Threads: revoke events arrive on the client's revoke thread (or on the thread inside lock());
// the callback only writes a record to a pipe, and the main thread waits on that pipe, stdin and
// the hold deadline in one poll(). Records carry the grant's token: only events about the grant
// this process holds are reported. The library may be told about a grant before lock() returns its
// token (the pipe keeps the record until then), and about grants it gave back inside lock()
// without ever handing them out (those are not ours to report).
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "commands.hpp"
#include "help.hpp"

namespace sessionctl {
namespace {

using sessionbroker::Clock;
using sessionbroker::ErrorCode;
using sessionbroker::in;
using sessionbroker::Mode;
using sessionbroker::RevokeEvent;
using sessionbroker::Status;

struct LockArgs {
  std::string segment, session;
  bool shared = false;
  std::vector<std::string> attrs;  // empty: the whole session
  std::chrono::milliseconds timeout = kDefaultTimeout;
  std::chrono::milliseconds hold{0};
  bool hold_given = false;
};

constexpr char kRevokeRequested = 'r';
constexpr char kLost = 'l';

struct EventRecord {
  char kind;
  std::uint64_t token;
};
// One write(2) per record, smaller than PIPE_BUF: the pipe holds whole records only, so reads of a
// multiple of the record size return whole records.
static_assert(sizeof(EventRecord) <= PIPE_BUF);

// A non-blocking pipe of EventRecords. Invariant: both ends open for its lifetime.
class EventPipe {
 public:
  EventPipe() {
    if (pipe2(fds_, O_CLOEXEC | O_NONBLOCK) != 0) fds_[0] = fds_[1] = -1;
  }
  ~EventPipe() {
    for (int fd : fds_)
      if (fd >= 0) close(fd);
  }
  EventPipe(const EventPipe&) = delete;
  EventPipe& operator=(const EventPipe&) = delete;

  bool ok() const { return fds_[0] >= 0; }
  int read_end() const { return fds_[0]; }
  void post(char kind, std::uint64_t token) const {
    const EventRecord r{kind, token};
    (void)!write(fds_[1], &r, sizeof r);
  }

 private:
  int fds_[2];
};

enum class HoldEnd { kDone, kLost, kError };

// Reports the waiting events about grant `token`; returns false once that grant was lost.
bool drain_events(int fd, std::uint64_t token) {
  EventRecord buf[16];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) {
    for (std::size_t i = 0; i < static_cast<std::size_t>(n) / sizeof(EventRecord); ++i) {
      if (buf[i].token != token) continue;
      if (buf[i].kind == kLost) {
        fmt::print(stderr, "lost\n");
        return false;
      }
      fmt::print(stderr, "revoke-requested\n");
    }
  }
  return true;
}

// Consumes what stdin has; returns true at EOF (or on a read error, which ends the hold the same way).
bool stdin_ended() {
  char buf[4096];
  for (;;) {
    const ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
    if (n > 0) return false;
    if (n < 0 && errno == EINTR) continue;
    return true;
  }
}

int poll_timeout_ms(std::optional<Clock::time_point> end) {
  if (!end) return -1;
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(*end - Clock::now());
  // poll() takes an int: a longer hold (--hold 30d and up) waits INT_MAX ms at a time.
  return left.count() > 0 ? static_cast<int>(std::min<std::int64_t>(left.count(), INT_MAX)) : 0;
}

// Waits until the hold of grant `token` ends: the deadline `end` if given, else EOF on stdin.
HoldEnd hold(const EventPipe& events, std::uint64_t token, std::optional<Clock::time_point> end) {
  for (;;) {
    pollfd fds[2] = {{events.read_end(), POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
    const int rc = poll(fds, end ? 1 : 2, poll_timeout_ms(end));
    if (rc < 0 && errno != EINTR) return HoldEnd::kError;
    if (fds[0].revents & POLLIN && !drain_events(events.read_end(), token)) return HoldEnd::kLost;
    if (!end && fds[1].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL) && stdin_ended()) return HoldEnd::kDone;
    if (end && Clock::now() >= *end) return HoldEnd::kDone;
  }
}

void forward_revokes(sessionbroker::Client& client, const std::string& session, const EventPipe& events) {
  client.on_revoke([&session, &events](const RevokeEvent& e) {
    if (e.session_id != session) return;
    if (e.kind == RevokeEvent::Kind::kRequested) events.post(kRevokeRequested, e.token);
    if (e.kind == RevokeEvent::Kind::kLost) events.post(kLost, e.token);
  });
}

int run_lock(const LockArgs& a) {
  EventPipe events;  // declared before the client: outlives the revoke thread that writes to it
  if (!events.ok()) return fail(Status(ErrorCode::kSystem, "pipe2 failed"));
  int rc = kExitOk;
  auto client = attach_or_report(a.segment, rc);
  if (!client) return rc;
  forward_revokes(*client, a.session, events);
  auto session = client->open(a.session);
  if (!session) return fail(session.status());
  const Mode mode = a.shared ? Mode::kShared : Mode::kExclusive;
  auto lock = a.attrs.empty() ? session->lock_all(mode, in(a.timeout)) : session->lock(a.attrs, mode, in(a.timeout));
  if (!lock) return fail(lock.status());
  fmt::print("token={}\n", lock->token());
  std::fflush(stdout);
  const auto end = a.hold_given ? std::optional(in(a.hold)) : std::nullopt;  // in() saturates
  switch (hold(events, lock->token(), end)) {
    case HoldEnd::kLost: return kExitLost;
    case HoldEnd::kError: return fail(Status(ErrorCode::kSystem, "poll failed while holding the lock"));
    case HoldEnd::kDone: break;
  }
  if (Status st = unlock_and_release(*session, *lock, in(a.timeout)); !st) return fail(st);
  return kExitOk;
}

}  // namespace

void add_lock_command(CLI::App& app, Action& action) {
  auto a = std::make_shared<LockArgs>();
  auto* sub = app.add_subcommand(
      "lock",
      "take a lock, print token=N, hold it until EOF on stdin (or for --hold), release");
  set_man_page(*sub, {
      .description =
          "Takes a lock on SESSION (exclusive, or shared with --shared), prints token=N (its fencing token) "
          "on stdout, then holds it until stdin reaches EOF, or for --hold if given, and gives it back. With "
          "--attr it locks those attributes inside this process; between processes it is always a lock on "
          "the whole session.\n"
          "\n"
          "It is a busy holder, for scripts and tests that need a queue: a revoke request (another process "
          "queued) does not make it release early; it prints revoke-requested on stderr and keeps the lock. "
          "If the lock is taken away by force (revoke deadline, break-lock, expire, evict-client) it prints "
          "lost on stderr and exits with status 5.\n",
      .exit_status = "3 when there is no such session. 4 when the lock was not granted within --timeout. 5 "
                     "when the lock was taken away while held.",
      .examples =
          "Hold the exclusive lock for ten seconds:\n"
          "  $ sessionctl lock user:42 --hold 10s\n"
          "  token=1712000000123\n"
          "\n"
          "Hold a shared lock until the shell closes the pipe:\n"
          "  $ sleep 60 | sessionctl lock user:42 --shared\n",
  });
  add_store_option(*sub, a->segment);
  sub->add_option("SESSION", a->session, "session id")->required();
  sub->add_flag("--shared", a->shared, "shared lock (default: exclusive)");
  sub->add_option("--attr", a->attrs, "lock this attribute (repeatable; default: the whole session)")
      ->allow_extra_args(false)
      ->type_name("ATTR");
  add_duration_option(*sub, "--timeout", a->timeout, "how long to wait for the lock (default 5s)");
  auto* hold_opt = add_duration_option(*sub, "--hold", a->hold, "hold this long instead of until EOF on stdin");
  sub->callback([&action, a, hold_opt] {
    a->hold_given = hold_opt->count() > 0;
    action = [a] { return run_lock(*a); };
  });
}

}  // namespace sessionctl
