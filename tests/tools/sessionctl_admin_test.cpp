// sessionctl break-lock, expire and evict-client end to end, and the man-page --help of every
// command. Every test starts its own session-broker on a private segment.
//
// The processes: the test process itself is the client whose lock is broken, expired or evicted
// (through the public API, so it can check what the library reports: kStaleToken, kDetached, the
// kLost callback); `sessionctl lock` children wait behind it; the admin command runs as another
// child. A holder learns that a waiter has queued from its revoke callback (kRequested), so no test
// sleeps; every wait has a deadline.
#include <poll.h>
#include <pty.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "eventually.hpp"
#include "segment.hpp"
#include "sessionbroker/client.hpp"
#include "sessionbroker/shm/atomic_word.hpp"
#include "subprocess.hpp"
#include "tool_test_util.hpp"

namespace {

using namespace sbtest;
using nlohmann::json;
using sessionbroker::Client;
using sessionbroker::ErrorCode;
using sessionbroker::in;
using sessionbroker::Mode;
using sessionbroker::RevokeEvent;
using sessionbroker::Session;
using sessionbroker::SessionLock;
using Kind = RevokeEvent::Kind;

const std::string kCtl = SESSIONCTL_PATH;
const std::string kBroker = SESSION_BROKER_PATH;

// The revoke events the test process's client hears (on its revoke thread).
class RevokeLog {
 public:
  void listen(Client& client) {
    client.on_revoke([this](const RevokeEvent& e) {
      std::lock_guard g(mu_);
      events_.push_back(e);
      cv_.notify_all();
    });
  }
  // True once an event of `kind` about grant `token` arrived; false at the deadline.
  bool wait_for(Kind kind, std::uint64_t token) {
    std::unique_lock lk(mu_);
    return cv_.wait_until(lk, soon(), [&] { return heard_locked(kind, token); });
  }
  bool heard(Kind kind, std::uint64_t token) {
    std::lock_guard g(mu_);
    return heard_locked(kind, token);
  }

 private:
  bool heard_locked(Kind kind, std::uint64_t token) const {
    return std::any_of(events_.begin(), events_.end(),
                       [&](const RevokeEvent& e) { return e.kind == kind && e.token == token; });
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<RevokeEvent> events_;
};

class SessionctlAdminTest : public ::testing::Test {
 protected:
  void SetUp() override {
    segment_ = unique_segment("admin");
    ASSERT_FALSE(segment_exists(segment_)) << "stale segment " << segment_;
    broker_.emplace(Child::spawn(kBroker, {"--segment", segment_, "--remove-on-exit", "--ready-fd", "1"}));
    ASSERT_EQ(broker_->out().next(soon()), "ready") << broker_->err().rest(soon()).value_or("");
  }

  void TearDown() override {
    lock_.reset();
    session_.reset();
    client_.reset();
    if (broker_) {
      kill(broker_->pid(), SIGTERM);
      EXPECT_EQ(broker_->wait(soon()), 0) << "session-broker did not stop cleanly";
    }
    EXPECT_FALSE(segment_exists(segment_)) << "segment left behind in /dev/shm";
    sessionbroker::detail::Segment::remove(segment_);
  }

  // Runs sessionctl (stdin /dev/null: not a terminal) with `args` followed by --segment.
  RunResult ctl(std::vector<std::string> args) {
    args.insert(args.end(), {"--segment", segment_});
    return run(kCtl, args);
  }

  // `sessionctl lock SESSION --timeout 60s`: granted when the session is free, else queued; holds
  // until its stdin is closed.
  Child start_lock(const std::string& session) {
    return Child::spawn(kCtl, {"lock", session, "--timeout", "60s", "--segment", segment_}, /*keep_stdin=*/true);
  }

  // The test process attaches and takes the exclusive lock on `session`; returns its token.
  std::uint64_t hold(const std::string& session) {
    auto client = Client::attach(segment_);
    if (!client) return 0;
    client_ = std::move(*client);
    events_.listen(*client_);
    auto s = client_->open(session);
    if (!s) return 0;
    session_.emplace(std::move(*s));
    auto lock = session_->lock_all(Mode::kExclusive, in(kPatience));
    if (!lock) return 0;
    lock_.emplace(std::move(*lock));
    return lock_->token();
  }

  // The clients of the segment as dump --json shows them: pid -> state.
  std::vector<std::pair<int, std::string>> dumped_clients() {
    RunResult r = ctl({"dump", "--json"});
    std::vector<std::pair<int, std::string>> out;
    if (r.code != 0) {
      ADD_FAILURE() << "dump --json exited " << r.code << ": " << r.err;
      return out;
    }
    const json doc = json::parse(r.out);  // named: a range-for over a temporary's member dangles
    for (const auto& c : doc.at("clients")) out.emplace_back(c.at("pid").get<int>(), c.at("state").get<std::string>());
    return out;
  }

  // Whether any client slot is in use by `pid` (read straight from the segment, without a process).
  bool slot_in_use(pid_t pid) {
    auto seg = sessionbroker::detail::Segment::open(segment_);
    if (!seg) return false;
    for (std::uint32_t i = 0; i < (*seg)->caps().max_clients; ++i) {
      const auto& c = (*seg)->client(i);
      const auto state = sessionbroker::shm::state(c);
      if (state != sessionbroker::shm::ClientState::kFree && c.pid == pid) return true;
    }
    return false;
  }

  std::string segment_;
  std::optional<Child> broker_;
  RevokeLog events_;  // declared before client_: outlives the revoke thread that writes to it
  std::unique_ptr<Client> client_;
  std::optional<Session> session_;
  std::optional<SessionLock> lock_;
};

// ---- break-lock ----

TEST_F(SessionctlAdminTest, BreakLockFencesTheHolderAndGrantsTheWaiter) {
  ASSERT_EQ(ctl({"put", "s", "cart", "committed", "--create"}).code, 0);
  const std::uint64_t t1 = hold("s");
  ASSERT_GT(t1, 0u);
  ASSERT_TRUE(lock_->put("cart", "uncommitted"));
  Child waiter = start_lock("s");
  ASSERT_TRUE(events_.wait_for(Kind::kRequested, t1)) << "the waiter never queued";

  RunResult r = ctl({"break-lock", "s", "--yes"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, fmt::format("broke session=s pid={} mode=exclusive token={}\n", getpid(), t1));

  const std::uint64_t t2 = parse_token(waiter.out().next(soon()));
  EXPECT_GT(t2, t1) << "the waiter must be granted, with a larger token";
  EXPECT_TRUE(events_.wait_for(Kind::kLost, t1)) << "the holder's callback did not hear kLost";
  EXPECT_EQ(lock_->get("cart").code(), ErrorCode::kStaleToken);
  EXPECT_EQ(lock_->commit().code(), ErrorCode::kStaleToken);
  lock_.reset();

  waiter.close_stdin();
  EXPECT_EQ(waiter.wait(soon()), 0);
  EXPECT_EQ(ctl({"get", "s", "cart"}).out, "committed\n") << "the broken holder's write must not land";
}

TEST_F(SessionctlAdminTest, BreakLockOfAnUnheldSessionSaysSoAndExits0) {
  ASSERT_EQ(ctl({"create", "s"}).code, 0);
  RunResult r = ctl({"break-lock", "s", "--yes"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "session 's' has no holder: nothing to break\n");
}

TEST_F(SessionctlAdminTest, BreakLockOfAnUnknownSessionExits3) {
  RunResult r = ctl({"break-lock", "nobody", "--yes"});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err.rfind("sessionctl: not found:", 0), 0u) << r.err;
}

// ---- expire ----

TEST_F(SessionctlAdminTest, ExpireRemovesAHeldSessionAndFailsItsWaiters) {
  ASSERT_EQ(ctl({"put", "s", "cart", "x", "--create"}).code, 0);
  const std::uint64_t t1 = hold("s");
  ASSERT_GT(t1, 0u);
  Child waiter = start_lock("s");
  ASSERT_TRUE(events_.wait_for(Kind::kRequested, t1)) << "the waiter never queued";

  RunResult r = ctl({"expire", "s", "--yes"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "expired session=s\n");

  EXPECT_TRUE(events_.wait_for(Kind::kLost, t1)) << "the holder's callback did not hear kLost";
  EXPECT_FALSE(lock_->commit()) << "a commit to an expired session must fail";
  EXPECT_EQ(waiter.wait(soon()), 3) << "a queued request on an expired session fails with kNotFound";
  EXPECT_EQ(client_->open("s").code(), ErrorCode::kNotFound);
  EXPECT_EQ(ctl({"list"}).out, "");
}

TEST_F(SessionctlAdminTest, ExpireOfAnUnknownSessionExits3) {
  RunResult r = ctl({"expire", "nobody", "--yes"});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.err.rfind("sessionctl: not found:", 0), 0u) << r.err;
}

// ---- evict-client ----

TEST_F(SessionctlAdminTest, EvictClientBreaksItsLockAndItsSlotGoesWhenItDetaches) {
  ASSERT_EQ(ctl({"create", "s"}).code, 0);
  const std::uint64_t t1 = hold("s");
  ASSERT_GT(t1, 0u);
  Child waiter = start_lock("s");
  ASSERT_TRUE(events_.wait_for(Kind::kRequested, t1)) << "the waiter never queued";

  RunResult r = ctl({"evict-client", std::to_string(getpid()), "--yes"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind(fmt::format("evicted pid={} client=", getpid()), 0), 0u) << r.out;

  EXPECT_GT(parse_token(waiter.out().next(soon())), t1) << "the lock must go to the waiter";
  EXPECT_TRUE(events_.wait_for(Kind::kLost, t1)) << "the evicted client's callback did not hear kLost";
  lock_.reset();
  EXPECT_EQ(session_->lock_all(Mode::kExclusive, in(kPatience)).code(), ErrorCode::kDetached);
  const auto before = dumped_clients();
  EXPECT_NE(std::find(before.begin(), before.end(), std::pair<int, std::string>(getpid(), "evicted")), before.end())
      << "until it detaches, the evicted client keeps its slot";

  session_.reset();
  EXPECT_TRUE(client_->detach());
  for (const auto& [pid, state] : dumped_clients()) EXPECT_NE(pid, getpid()) << "slot still " << state;

  waiter.close_stdin();
  EXPECT_EQ(waiter.wait(soon()), 0);
}

// The other way an evicted client's slot is freed: it dies. The holder is stopped before the
// eviction, so it cannot notice it and detach by itself; the broker reclaims it once it is killed.
TEST_F(SessionctlAdminTest, EvictedClientThatDiesIsReclaimed) {
  ASSERT_EQ(ctl({"create", "s"}).code, 0);
  Child holder = start_lock("s");
  const std::uint64_t t1 = parse_token(holder.out().next(soon()));
  ASSERT_GT(t1, 0u);
  Child waiter = start_lock("s");
  ASSERT_EQ(holder.err().next(soon()), "revoke-requested");  // the waiter is queued
  ASSERT_EQ(kill(holder.pid(), SIGSTOP), 0);

  RunResult r = ctl({"evict-client", std::to_string(holder.pid()), "--yes"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_GT(parse_token(waiter.out().next(soon())), t1);

  ASSERT_EQ(kill(holder.pid(), SIGKILL), 0);
  EXPECT_EQ(holder.wait(soon()), 128 + SIGKILL);
  EXPECT_TRUE(eventually([&] { return !slot_in_use(holder.pid()); }, kPatience))
      << "the broker did not reclaim the evicted client's slot";
  for (const auto& [pid, state] : dumped_clients()) EXPECT_NE(pid, holder.pid()) << "slot still " << state;

  waiter.close_stdin();
  EXPECT_EQ(waiter.wait(soon()), 0);
}

TEST_F(SessionctlAdminTest, EvictingAProcessThatIsNotAttachedExits3) {
  RunResult r = ctl({"evict-client", std::to_string(getpid()), "--yes"});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.err, fmt::format("sessionctl: not found: pid {} is not attached to segment '{}'\n", getpid(), segment_));
  EXPECT_EQ(ctl({"evict-client", "0", "--yes"}).code, 2);
  EXPECT_EQ(ctl({"evict-client", "init", "--yes"}).code, 2);
}

// ---- confirmation ----

TEST_F(SessionctlAdminTest, WithoutYesAndWithoutATerminalNothingChanges) {
  ASSERT_EQ(ctl({"create", "s"}).code, 0);
  const std::uint64_t t1 = hold("s");
  ASSERT_GT(t1, 0u);
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"break-lock", "s"}, {"expire", "s"}, {"evict-client", std::to_string(getpid())}}) {
    RunResult r = ctl(args);
    EXPECT_EQ(r.code, 2) << args[0];
    EXPECT_EQ(r.out, "") << args[0];
    EXPECT_EQ(r.err.rfind("sessionctl: usage: ", 0), 0u) << r.err;
    EXPECT_TRUE(contains(r.err, "pass --yes")) << r.err;
  }
  EXPECT_TRUE(lock_->commit()) << "the lock must still be held";
  EXPECT_EQ(lock_->token(), t1);
  EXPECT_FALSE(events_.heard(Kind::kLost, t1));
  EXPECT_EQ(ctl({"list"}).out, "s\n");
  const auto clients = dumped_clients();
  EXPECT_NE(std::find(clients.begin(), clients.end(), std::pair<int, std::string>(getpid(), "live")), clients.end());
}

// Runs sessionctl on a pseudo-terminal (so stdin is a terminal), types `answer` once the question
// ends in "[y/N] ", and returns everything it wrote (stdout and stderr, as the terminal shows them).
RunResult run_on_terminal(std::vector<std::string> args, const std::string& answer) {
  args.insert(args.begin(), kCtl);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int master = -1;
  const pid_t pid = forkpty(&master, nullptr, nullptr, nullptr);
  if (pid == 0) {
    execv(argv[0], argv.data());
    _exit(127);
  }
  RunResult r;
  if (pid < 0) return r;
  bool answered = false;
  const auto deadline = soon();
  char buf[4096];
  for (;;) {
    pollfd p{master, POLLIN, 0};
    if (poll(&p, 1, 100) == 0) {
      if (Clock::now() >= deadline) break;
      continue;
    }
    const ssize_t n = read(master, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EIO: the child closed the terminal
    r.out.append(buf, static_cast<std::size_t>(n));
    if (!answered && contains(r.out, "[y/N] ")) {
      const std::string line = answer + "\n";
      answered = write(master, line.data(), line.size()) == static_cast<ssize_t>(line.size());
    }
  }
  close(master);
  kill(pid, SIGKILL);  // only if it still runs after the deadline
  int status = 0;
  waitpid(pid, &status, 0);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

TEST_F(SessionctlAdminTest, OnATerminalItShowsTheEffectAndAsks) {
  ASSERT_EQ(ctl({"create", "cart-42"}).code, 0);
  const std::uint64_t t1 = hold("cart-42");
  ASSERT_GT(t1, 0u);
  const std::string question =
      fmt::format("break 1 lock on session 'cart-42': pid {} exclusive token {}? [y/N] ", getpid(), t1);

  RunResult no = run_on_terminal({"break-lock", "cart-42", "--segment", segment_}, "n");
  EXPECT_EQ(no.code, 1) << no.out;
  EXPECT_TRUE(contains(no.out, question)) << no.out;
  EXPECT_TRUE(contains(no.out, "nothing changed")) << no.out;
  EXPECT_TRUE(lock_->commit()) << "answered n: the lock must still be held";

  RunResult yes = run_on_terminal({"break-lock", "cart-42", "--segment", segment_}, "y");
  EXPECT_EQ(yes.code, 0) << yes.out;
  EXPECT_TRUE(contains(yes.out, question)) << yes.out;
  EXPECT_TRUE(contains(yes.out, fmt::format("broke session=cart-42 pid={} mode=exclusive token={}", getpid(), t1)))
      << yes.out;
  EXPECT_TRUE(events_.wait_for(Kind::kLost, t1));
}

// ---- help ----

TEST(SessionctlAdminHelp, EveryCommandHasAManPage) {
  for (const std::string cmd : {"", "create", "destroy", "list", "get", "put", "lock", "dump", "check", "break-lock",
                                "expire", "evict-client"}) {
    RunResult r = cmd.empty() ? run(kCtl, {"--help"}) : run(kCtl, {cmd, "--help"});
    EXPECT_EQ(r.code, 0) << cmd;
    for (const char* section : {"NAME\n", "SYNOPSIS\n", "DESCRIPTION\n", "OPTIONS\n", "EXIT STATUS\n", "EXAMPLES\n"})
      EXPECT_TRUE(contains(r.out, section)) << "sessionctl " << cmd << " --help has no " << section;
    EXPECT_TRUE(contains(r.out, "Exit codes:")) << cmd;  // kExitCodeHelp
  }
  RunResult broker = run(kBroker, {"--help"});
  EXPECT_EQ(broker.code, 0);
  for (const char* part : {"SIGTERM", "SIGHUP", "Exit status:", "--default-ttl DURATION=30m", "Examples:"})
    EXPECT_TRUE(contains(broker.out, part)) << "session-broker --help has no " << part;
}

}  // namespace
