// sessionctl end to end: every test starts its own session-broker on a private segment and drives
// the real sessionctl binary as a child process, checking stdout, stderr and exit codes.
//
// Lock tests build queues with `sessionctl lock`, a "busy holder" that ignores revoke requests and
// holds until its stdin reaches EOF; closing its stdin is how a test releases it at a chosen moment.
// A holder reports "revoke-requested" on stderr when a process queues behind it: tests wait for
// that line to know the second process is queued, instead of sleeping. Nothing sleeps; every wait
// has a deadline.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "segment.hpp"
#include "admin.hpp"
#include "subprocess.hpp"
#include "tool_test_util.hpp"

namespace {

using namespace sbtest;
using nlohmann::json;

const std::string kCtl = SESSIONCTL_PATH;
const std::string kBroker = SESSION_BROKER_PATH;

class SessionctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    segment_ = unique_segment("ctl");
    ASSERT_FALSE(segment_exists(segment_)) << "stale segment " << segment_;
    start_broker();
  }

  void TearDown() override {
    if (broker_) {
      kill(broker_->pid(), SIGTERM);
      EXPECT_EQ(broker_->wait(soon()), 0) << "session-broker did not stop cleanly";
      broker_.reset();
    }
    EXPECT_FALSE(segment_exists(segment_)) << "segment left behind in /dev/shm";
    sessionbroker::detail::Segment::remove(segment_);  // in case the broker could not do it
  }

  virtual std::vector<std::string> extra_broker_args() const { return {}; }

  // session-broker writes "ready" on its --ready-fd, which Child maps to the pipe we read as stdout.
  void start_broker() {
    std::vector<std::string> args{"--segment", segment_, "--remove-on-exit", "--ready-fd", "1"};
    for (const auto& a : extra_broker_args()) args.push_back(a);
    broker_.emplace(Child::spawn(kBroker, args));
    ASSERT_EQ(broker_->out().next(soon()), "ready") << "session-broker did not start: " << broker_->err().rest(soon()).value_or("");
  }

  // Runs sessionctl with `args` followed by --segment.
  RunResult ctl(std::vector<std::string> args) {
    args.insert(args.end(), {"--segment", segment_});
    return run(kCtl, args);
  }

  // Starts `sessionctl lock SESSION extra... --segment S` holding until its stdin is closed.
  Child start_lock(const std::string& session, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"lock", session};
    args.insert(args.end(), extra.begin(), extra.end());
    args.insert(args.end(), {"--segment", segment_});
    return Child::spawn(kCtl, args, /*keep_stdin=*/true);
  }

  // The queue of `session` as dump --json shows it: pids, oldest first.
  std::vector<int> queued_pids(const std::string& session) {
    auto seg = sessionbroker::detail::Segment::open(segment_);
    if (!seg) return {};
    sessionbroker::detail::Admin admin(**seg);
    for (std::uint32_t slot = 0; slot < (*seg)->caps().max_sessions; ++slot) {
      auto snap = admin.snapshot(slot);
      if (!snap || snap->id != session) continue;
      std::vector<int> pids;
      for (const auto& w : snap->queue) pids.push_back(w.pid);
      return pids;
    }
    return {};
  }

  // Waits until `n` processes are queued on `session`. Between looks it waits on `watched`'s
  // stdout, which becomes readable only if that process is granted or fails (either ends the wait).
  bool wait_for_queue_length(const std::string& session, std::size_t n, Child& watched) {
    const auto deadline = soon();
    while (queued_pids(session).size() < n) {
      if (Clock::now() >= deadline) return false;
      if (wait_readable(watched.stdout_fd(), Clock::now() + 5ms)) return queued_pids(session).size() >= n;
    }
    return true;
  }

  std::string segment_;
  std::optional<Child> broker_;
};

// ---- sessions ----

TEST_F(SessionctlTest, CreateListDestroy) {
  EXPECT_EQ(ctl({"create", "user:1"}).code, 0);
  EXPECT_EQ(ctl({"create", "user:2", "--ttl", "10m"}).code, 0);
  EXPECT_EQ(ctl({"list"}).out, "user:1\nuser:2\n");

  EXPECT_EQ(ctl({"destroy", "user:1"}).code, 0);
  EXPECT_EQ(ctl({"list"}).out, "user:2\n");
}

TEST_F(SessionctlTest, CreateOfAnExistingSessionIsAnError) {
  ASSERT_EQ(ctl({"create", "user:1"}).code, 0);
  RunResult r = ctl({"create", "user:1"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "sessionctl: already exists: session 'user:1' already exists\n");
}

TEST_F(SessionctlTest, DestroyOfAMissingSessionExits3) {
  RunResult r = ctl({"destroy", "nobody"});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.err.rfind("sessionctl: not found:", 0), 0u) << r.err;
}

// ---- attributes ----

TEST_F(SessionctlTest, PutThenGetRoundTrip) {
  ASSERT_EQ(ctl({"put", "user:1", "cart", "3 apples, 1 pear", "--create"}).code, 0);
  RunResult r = ctl({"get", "user:1", "cart"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "3 apples, 1 pear\n");
  EXPECT_EQ(r.err, "");

  ASSERT_EQ(ctl({"put", "user:1", "cart", "empty"}).code, 0);
  EXPECT_EQ(ctl({"get", "user:1", "cart"}).out, "empty\n");
}

TEST_F(SessionctlTest, PutWithoutCreateOnAMissingSessionExits3) {
  EXPECT_EQ(ctl({"put", "user:1", "cart", "x"}).code, 3);
  EXPECT_EQ(ctl({"list"}).out, "");
}

TEST_F(SessionctlTest, GetOfAMissingAttributeExits3WithNothingOnStdout) {
  ASSERT_EQ(ctl({"create", "user:1"}).code, 0);
  RunResult r = ctl({"get", "user:1", "cart"});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "sessionctl: not found: session 'user:1' has no attribute 'cart'\n");
}

TEST_F(SessionctlTest, GetOnAMissingSessionExits3) {
  RunResult r = ctl({"get", "nobody", "cart"});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.out, "");
}

// ---- locks ----

TEST_F(SessionctlTest, LockPrintsTokenAndReleasesAtEof) {
  ASSERT_EQ(ctl({"create", "user:1"}).code, 0);
  Child holder = start_lock("user:1");
  EXPECT_GT(parse_token(holder.out().next(soon())), 0u);
  holder.close_stdin();
  EXPECT_EQ(holder.wait(soon()), 0);
  // Released: an exclusive lock is granted at once.
  EXPECT_EQ(ctl({"lock", "user:1", "--hold", "0ms", "--timeout", "1s"}).code, 0);
}

TEST_F(SessionctlTest, SecondLockTimesOutWithExit4WhileTheFirstHolds) {
  ASSERT_EQ(ctl({"create", "user:1"}).code, 0);
  Child holder = start_lock("user:1");
  ASSERT_GT(parse_token(holder.out().next(soon())), 0u);

  RunResult second = ctl({"lock", "user:1", "--timeout", "200ms"});
  EXPECT_EQ(second.code, 4);
  EXPECT_EQ(second.out, "");
  EXPECT_EQ(second.err, "sessionctl: timed out: lock not granted before the deadline\n");
  // The holder was asked to release and, being busy, kept the lock.
  EXPECT_EQ(holder.err().next(soon()), "revoke-requested");

  holder.close_stdin();
  EXPECT_EQ(holder.wait(soon()), 0);
}

TEST_F(SessionctlTest, ClosingStdinHandsTheLockToTheWaiterWithALargerToken) {
  ASSERT_EQ(ctl({"create", "user:1"}).code, 0);
  Child first = start_lock("user:1");
  const std::uint64_t t1 = parse_token(first.out().next(soon()));
  ASSERT_GT(t1, 0u);
  Child second = start_lock("user:1", {"--timeout", "10s"});
  ASSERT_EQ(first.err().next(soon()), "revoke-requested");  // second is queued now

  first.close_stdin();
  EXPECT_EQ(first.wait(soon()), 0);
  const std::uint64_t t2 = parse_token(second.out().next(soon()));
  EXPECT_GT(t2, t1) << "fencing tokens must grow from one grant to the next";

  second.close_stdin();
  EXPECT_EQ(second.wait(soon()), 0);
}

TEST_F(SessionctlTest, SharedLocksAreGrantedTogether) {
  ASSERT_EQ(ctl({"create", "user:1"}).code, 0);
  Child reader = start_lock("user:1", {"--shared"});
  ASSERT_GT(parse_token(reader.out().next(soon())), 0u);
  RunResult other = ctl({"lock", "user:1", "--shared", "--hold", "0ms", "--timeout", "2s"});
  EXPECT_EQ(other.code, 0) << other.err;
  EXPECT_GT(parse_token(other.out.substr(0, other.out.find('\n'))), 0u);
  reader.close_stdin();
  EXPECT_EQ(reader.wait(soon()), 0);
}

TEST_F(SessionctlTest, AttributeLocksOfOneSessionAreOneProcessLock) {
  // --attr narrows the lock inside the process; between processes the session lock still decides.
  ASSERT_EQ(ctl({"create", "user:1"}).code, 0);
  Child holder = start_lock("user:1", {"--attr", "cart", "--attr", "profile"});
  ASSERT_GT(parse_token(holder.out().next(soon())), 0u);
  EXPECT_EQ(ctl({"put", "user:1", "other", "x", "--timeout", "200ms"}).code, 4);
  holder.close_stdin();
  EXPECT_EQ(holder.wait(soon()), 0);
}

// ---- dump ----

TEST_F(SessionctlTest, DumpJsonShowsHolderAndQueueInOrder) {
  ASSERT_EQ(ctl({"put", "user:1", "cart", "12345", "--create"}).code, 0);
  Child holder = start_lock("user:1");
  const std::uint64_t token = parse_token(holder.out().next(soon()));
  ASSERT_GT(token, 0u);
  Child first = start_lock("user:1", {"--timeout", "10s"});
  ASSERT_EQ(holder.err().next(soon()), "revoke-requested");
  Child second = start_lock("user:1", {"--shared", "--timeout", "10s"});
  ASSERT_TRUE(wait_for_queue_length("user:1", 2, second));

  RunResult r = ctl({"dump", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const json doc = json::parse(r.out);
  EXPECT_EQ(doc["segment"], segment_);
  ASSERT_EQ(doc["sessions"].size(), 1u);
  const json& s = doc["sessions"][0];
  EXPECT_EQ(s["id"], "user:1");
  EXPECT_EQ(s["mode"], "exclusive");
  EXPECT_EQ(s["version"], 1);
  ASSERT_EQ(s["holders"].size(), 1u);
  EXPECT_EQ(s["holders"][0]["pid"], holder.pid());
  EXPECT_EQ(s["holders"][0]["token"], token);
  EXPECT_EQ(s["holders"][0]["mode"], "exclusive");
  EXPECT_EQ(s["holders"][0]["revoke_requested"], true);
  ASSERT_EQ(s["queue"].size(), 2u);
  EXPECT_EQ(s["queue"][0]["pid"], first.pid());
  EXPECT_EQ(s["queue"][0]["mode"], "exclusive");
  EXPECT_EQ(s["queue"][1]["pid"], second.pid());
  EXPECT_EQ(s["queue"][1]["mode"], "shared");
  EXPECT_EQ(s["attributes"], json::parse(R"([{"name": "cart", "size": 5}])"));
  for (const char* key : {"idle_ms", "ttl_ms"}) EXPECT_TRUE(s[key].is_number_unsigned()) << key;
  std::vector<int> client_pids;
  for (const auto& c : doc["clients"]) {
    EXPECT_EQ(c["state"], "live");
    client_pids.push_back(c["pid"].get<int>());
  }
  EXPECT_EQ(client_pids, (std::vector<int>{holder.pid(), first.pid(), second.pid()}));
  EXPECT_GT(doc["next_token"].get<std::uint64_t>(), token);
  EXPECT_TRUE(doc["free_blocks"].is_number_unsigned());

  holder.close_stdin();
  EXPECT_EQ(holder.wait(soon()), 0);
  // first and second may still be waiting; their destructors end them.
}

// The queue is FIFO: an exclusive waiter queued before a shared one is granted first, and the
// shared one only once the exclusive one is done.
TEST_F(SessionctlTest, WaitersAreGrantedInQueueOrder) {
  ASSERT_EQ(ctl({"create", "user:1"}).code, 0);
  Child holder = start_lock("user:1");
  const std::uint64_t t0 = parse_token(holder.out().next(soon()));
  ASSERT_GT(t0, 0u);
  Child first = start_lock("user:1", {"--timeout", "10s"});
  ASSERT_EQ(holder.err().next(soon()), "revoke-requested");
  Child second = start_lock("user:1", {"--shared", "--timeout", "10s"});
  ASSERT_TRUE(wait_for_queue_length("user:1", 2, second));

  holder.close_stdin();
  EXPECT_EQ(holder.wait(soon()), 0);
  const std::uint64_t t1 = parse_token(first.out().next(soon()));
  EXPECT_GT(t1, t0) << "the oldest waiter (exclusive) was not granted next";
  EXPECT_FALSE(wait_readable(second.stdout_fd(), Clock::now())) << "shared waiter granted while the exclusive one holds";

  first.close_stdin();
  EXPECT_EQ(first.wait(soon()), 0);
  EXPECT_GT(parse_token(second.out().next(soon())), t1);
  second.close_stdin();
  EXPECT_EQ(second.wait(soon()), 0);
}

TEST_F(SessionctlTest, DumpTableShowsSessionsAndClients) {
  ASSERT_EQ(ctl({"put", "user:1", "cart", "abc", "--create"}).code, 0);
  Child holder = start_lock("user:1");
  ASSERT_GT(parse_token(holder.out().next(soon())), 0u);
  RunResult r = ctl({"dump"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find(fmt::format("segment {}: 1 sessions, 1 clients", segment_)), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(fmt::format("{}@", holder.pid())), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("cart(3)"), std::string::npos) << r.out;
  holder.close_stdin();
  EXPECT_EQ(holder.wait(soon()), 0);
}

// ---- usage and errors ----

TEST_F(SessionctlTest, InvalidDurationIsAUsageError) {
  ASSERT_EQ(ctl({"create", "user:1"}).code, 0);
  for (const auto& args : std::vector<std::vector<std::string>>{{"lock", "user:1", "--timeout", "5parsecs"},
                                                                {"lock", "user:1", "--hold", "soon"},
                                                                {"get", "user:1", "cart", "--timeout", "ms"},
                                                                {"create", "user:2", "--ttl", "1fortnight"}}) {
    RunResult r = ctl(args);
    EXPECT_EQ(r.code, 2) << args[0] << " " << args[2];
    EXPECT_EQ(r.err.rfind("sessionctl: usage: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find("expected a duration"), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");
  }
}

TEST_F(SessionctlTest, BadCommandLinesAreUsageErrors) {
  EXPECT_EQ(run(kCtl, {}).code, 2);
  EXPECT_EQ(run(kCtl, {"frobnicate"}).code, 2);
  EXPECT_EQ(ctl({"get", "user:1"}).code, 2);  // ATTR missing
  EXPECT_EQ(run(kCtl, {"--help"}).code, 0);
  EXPECT_NE(run(kCtl, {"--help"}).out.find("Exit codes:"), std::string::npos);
}

TEST(SessionctlNoBroker, MissingSegmentExits1) {
  RunResult r = run(kCtl, {"list", "--segment", unique_segment("ctl")});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err.rfind("sessionctl: no such segment:", 0), 0u) << r.err;
  EXPECT_EQ(run(kCtl, {"dump", "--segment", unique_segment("ctl")}).code, 1);
}

// With a revoke deadline the broker takes the lock from a holder that ignores the request: the
// busy holder must notice, say "lost" and exit 5, and the waiter must get the lock.
class SessionctlRevokeDeadlineTest : public SessionctlTest {
 protected:
  std::vector<std::string> extra_broker_args() const override { return {"--revoke-deadline", "100ms"}; }
};

TEST_F(SessionctlRevokeDeadlineTest, BusyHolderLosesTheLockAndExits5) {
  ASSERT_EQ(ctl({"create", "user:1"}).code, 0);
  Child holder = start_lock("user:1");
  const std::uint64_t t1 = parse_token(holder.out().next(soon()));
  ASSERT_GT(t1, 0u);
  Child waiter = start_lock("user:1", {"--timeout", "10s"});
  EXPECT_EQ(holder.err().next(soon()), "revoke-requested");
  EXPECT_EQ(holder.err().next(soon()), "lost");
  EXPECT_EQ(holder.wait(soon()), 5);
  EXPECT_GT(parse_token(waiter.out().next(soon())), t1);
  waiter.close_stdin();
  EXPECT_EQ(waiter.wait(soon()), 0);
}

}  // namespace
