// sessionctl on an etcd store (--store etcd://...), end to end on a real 3-member cluster: the
// client commands through the public API, and dump, check, break-lock, expire and evict-client,
// which read and write the key space of docs/etcd.md directly.
//
// The processes: every lock holder and waiter is a `sessionctl lock` child; each admin command is
// another child; the test process itself only spawns them and reads their output. A holder says
// "revoke-requested" on stderr once a process has queued behind it and "lost" once its lock is
// taken away, so no test sleeps; every wait has a deadline. The check test writes malformed keys
// with an etcd client of its own; its sessionctl children are exec'd programs, so the gRPC state
// of the test process is never used in a forked child (docs/etcd.md "Fork").
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "etcd/etcd_backend.hpp"
#include "etcd/etcd_client.hpp"
#include "etcd_cluster.hpp"
#include "subprocess.hpp"
#include "tool_test_util.hpp"

namespace {

using namespace sbtest;
using nlohmann::json;
namespace etcd = sessionbroker::detail::etcd;

const std::string kCtl = SESSIONCTL_PATH;

class SessionctlEtcdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    cluster_ = EtcdCluster::start(&error);
    ASSERT_TRUE(cluster_) << error;
    store_ = cluster_->address("ctl");
  }

  RunResult ctl(std::vector<std::string> args) {
    args.insert(args.end(), {"--store", store_});
    return run(kCtl, args);
  }
  Child start_lock(const std::string& session, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"lock", session};
    args.insert(args.end(), extra.begin(), extra.end());
    args.insert(args.end(), {"--store", store_});
    return Child::spawn(kCtl, args, /*keep_stdin=*/true);
  }
  json dump() {
    RunResult r = ctl({"dump", "--json"});
    EXPECT_EQ(r.code, 0) << r.err;
    return json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  }
  // The session `id` of a dump, or null.
  static json session_of(const json& d, const std::string& id) {
    for (const auto& s : d.value("sessions", json::array()))
      if (s["id"] == id) return s;
    return nullptr;
  }
  // A holder of "s" and a waiter queued behind it (the holder has heard the revoke request).
  void hold_with_waiter(std::optional<Child>& holder, std::optional<Child>& waiter, std::uint64_t& token) {
    ASSERT_EQ(ctl({"create", "s"}).code, 0);
    holder.emplace(start_lock("s"));
    token = parse_token(holder->out().next(soon()));
    ASSERT_GT(token, 0u);
    waiter.emplace(start_lock("s"));
    ASSERT_EQ(holder->err().next(soon()), "revoke-requested");
  }

  std::unique_ptr<EtcdCluster> cluster_;
  std::string store_;
};

TEST_F(SessionctlEtcdTest, ClientCommandsWorkOnAnEtcdStore) {
  EXPECT_EQ(ctl({"create", "user:1"}).code, 0);
  EXPECT_EQ(ctl({"put", "user:1", "cart", "3 apples"}).code, 0);
  RunResult got = ctl({"get", "user:1", "cart"});
  EXPECT_EQ(got.code, 0) << got.err;
  EXPECT_EQ(got.out, "3 apples\n");
  EXPECT_EQ(ctl({"list"}).out, "user:1\n");
  EXPECT_EQ(ctl({"destroy", "user:1"}).code, 0);
  EXPECT_EQ(ctl({"get", "user:1", "cart"}).code, 3);
  EXPECT_EQ(ctl({"list"}).out, "");
}

TEST_F(SessionctlEtcdTest, SegmentOptionIsAnAliasOfStore) {
  EXPECT_EQ(ctl({"create", "a"}).code, 0);
  RunResult r = run(kCtl, {"list", "--segment", store_});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "a\n");
}

TEST_F(SessionctlEtcdTest, DumpShowsHoldersQueueAndClientsAndCheckHolds) {
  std::optional<Child> holder, waiter;
  std::uint64_t token = 0;
  ASSERT_NO_FATAL_FAILURE(hold_with_waiter(holder, waiter, token));
  const json d = dump();
  EXPECT_EQ(d["store"], store_);
  const json s = session_of(d, "s");
  ASSERT_TRUE(s.is_object()) << d.dump();
  EXPECT_EQ(s["mode"], "exclusive");
  ASSERT_EQ(s["holders"].size(), 1u);
  EXPECT_EQ(s["holders"][0]["pid"], holder->pid());
  EXPECT_EQ(s["holders"][0]["token"], token);
  EXPECT_EQ(s["holders"][0]["revoke_requested"], true);
  ASSERT_EQ(s["queue"].size(), 1u);
  EXPECT_EQ(s["queue"][0]["pid"], waiter->pid());
  EXPECT_EQ(s["queue"][0]["mode"], "exclusive");
  std::vector<int> client_pids;
  for (const auto& c : d["clients"]) client_pids.push_back(c["pid"]);
  EXPECT_EQ(client_pids.size(), 2u);
  EXPECT_TRUE(std::count(client_pids.begin(), client_pids.end(), holder->pid()));
  EXPECT_TRUE(std::count(client_pids.begin(), client_pids.end(), waiter->pid()));
  EXPECT_GT(d["next_token"].get<std::uint64_t>(), token);

  RunResult check = ctl({"check"});
  EXPECT_EQ(check.code, 0) << check.out << check.err;
  EXPECT_TRUE(contains(check.out, "1 sessions, 2 clients, 2 queue keys")) << check.out;
  EXPECT_TRUE(contains(check.out, "all invariants hold")) << check.out;
}

TEST_F(SessionctlEtcdTest, BreakLockFencesTheHolderAndGrantsTheWaiter) {
  std::optional<Child> holder, waiter;
  std::uint64_t token = 0;
  ASSERT_NO_FATAL_FAILURE(hold_with_waiter(holder, waiter, token));
  RunResult r = ctl({"break-lock", "s", "--yes"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, fmt::format("broke session=s pid={} mode=exclusive token={}\n", holder->pid(), token));
  EXPECT_EQ(holder->err().next(soon()), "lost");
  EXPECT_EQ(holder->wait(soon()), 5);
  EXPECT_GT(parse_token(waiter->out().next(soon())), token);
  // Nothing left to break but the waiter's new grant, which a stale break would never touch.
  EXPECT_EQ(ctl({"check"}).code, 0);
}

TEST_F(SessionctlEtcdTest, BreakLockWithoutYesOrTerminalChangesNothing) {
  std::optional<Child> holder, waiter;
  std::uint64_t token = 0;
  ASSERT_NO_FATAL_FAILURE(hold_with_waiter(holder, waiter, token));
  EXPECT_EQ(ctl({"break-lock", "s"}).code, 2);
  EXPECT_EQ(session_of(dump(), "s")["holders"][0]["token"], token);
}

TEST_F(SessionctlEtcdTest, ExpireRemovesTheSessionUnderItsHolders) {
  std::optional<Child> holder, waiter;
  std::uint64_t token = 0;
  ASSERT_NO_FATAL_FAILURE(hold_with_waiter(holder, waiter, token));
  RunResult r = ctl({"expire", "s", "--yes"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "expired session=s\n");
  EXPECT_EQ(holder->err().next(soon()), "lost");
  EXPECT_EQ(holder->wait(soon()), 5);
  EXPECT_EQ(waiter->wait(soon()), 3);  // its request fails: no such session
  EXPECT_EQ(ctl({"get", "s", "k"}).code, 3);
  EXPECT_EQ(ctl({"expire", "s", "--yes"}).code, 3);
  EXPECT_EQ(ctl({"check"}).code, 0);
}

TEST_F(SessionctlEtcdTest, EvictClientRevokesTheProcessLease) {
  std::optional<Child> holder, waiter;
  std::uint64_t token = 0;
  ASSERT_NO_FATAL_FAILURE(hold_with_waiter(holder, waiter, token));
  RunResult r = ctl({"evict-client", std::to_string(holder->pid()), "--yes"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.out.starts_with(fmt::format("evicted pid={} client=", holder->pid()))) << r.out;
  EXPECT_TRUE(r.out.ends_with(" broken_or_cancelled=1\n")) << r.out;
  EXPECT_EQ(holder->err().next(soon()), "lost");
  EXPECT_GT(parse_token(waiter->out().next(soon())), token);
  const auto after = dump();  // a named value: a range-for over dump()["clients"] would outlive the temporary
  for (const auto& c : after["clients"]) EXPECT_NE(c["pid"], holder->pid());
}

TEST_F(SessionctlEtcdTest, EvictClientOfAnUnknownPidIsNotFound) {
  RunResult r = ctl({"evict-client", std::to_string(getpid()), "--yes"});
  EXPECT_EQ(r.code, 3);
  EXPECT_TRUE(contains(r.err, "is not attached to store")) << r.err;
}

TEST_F(SessionctlEtcdTest, StatsRefusesAnEtcdStore) {
  EXPECT_EQ(ctl({"stats"}).code, 2);
}

// Keys no correct client writes, each breaking one invariant of docs/etcd.md "Invariants"; check
// must name every one. A queue key whose session is gone is a note, not a violation (E7: a session
// can expire under a held lock), as long as it is on a registered, live lease.
TEST_F(SessionctlEtcdTest, CheckNamesEachBrokenInvariant) {
  ASSERT_EQ(ctl({"create", "ok"}).code, 0);
  ASSERT_EQ(ctl({"check"}).code, 0);
  auto client = etcd::Client::connect(cluster_->endpoints());
  ASSERT_TRUE(client) << client.status().to_string();
  etcd::Client& c = **client;
  const etcd::Keys keys{"ctl"};
  auto live = c.grant(60);
  ASSERT_TRUE(live);
  auto lease_name = [](std::int64_t l) { return fmt::format("{:016x}", static_cast<std::uint64_t>(l)); };
  const std::string bad = keys.session("bad");
  const std::string gone = keys.session("gone");
  ASSERT_TRUE(c.put("ctl/s/zz", "x"));                                                    // E1: not hex
  ASSERT_TRUE(c.put(bad, "not a session"));                                               // E2 twice: value, no lease
  ASSERT_TRUE(c.put(etcd::Keys::queue(bad, 7, 1), "Q"));                                     // E3, E4: no lease
  ASSERT_TRUE(c.put(keys.client("h", live->id), "nopid", live->id));                      // E5: value
  ASSERT_TRUE(c.put(etcd::Keys::queue(gone, live->id, 1), "X", live->id));                   // E7: a note only
  RunResult r = ctl({"check"});
  EXPECT_EQ(r.code, 6) << r.out << r.err;
  for (const char* inv : {"VIOLATED E1 ", "VIOLATED E2 ", "VIOLATED E3 ", "VIOLATED E4 ", "VIOLATED E5 "})
    EXPECT_TRUE(contains(r.out, inv)) << inv << " in\n" << r.out;
  EXPECT_TRUE(contains(r.out, "note: session 'gone' expired under queue key")) << r.out;
  EXPECT_TRUE(contains(r.out, lease_name(live->id))) << r.out;
  EXPECT_FALSE(contains(r.out, "session 'ok'")) << r.out;

  // Only the note is left once the malformed keys are gone.
  ASSERT_TRUE(c.delete_range("ctl/s/zz"));
  ASSERT_TRUE(c.delete_range(bad, etcd::Keys::session_range_end(bad)));
  ASSERT_TRUE(c.put(keys.client("h", live->id), "123 456", live->id));
  r = ctl({"check"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "note: session 'gone'")) << r.out;
  ASSERT_TRUE(c.revoke(live->id));
}

}  // namespace
