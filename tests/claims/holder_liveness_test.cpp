// Waiters judge holders by their liveness (no broker here): a holder whose main thread has exited
// while another thread still works is alive, keeps its lock against the queue and commits with its
// token; only when its whole thread group is gone does the lock pass on.
#include <fstream>
#include <string>
#include <thread>

#include <unistd.h>

#include "claim_fixture.hpp"
#include "main_thread_exit.hpp"

namespace sbtest {
namespace {

// The bug: the holder's main thread called pthread_exit(), so /proc/PID/stat shows `Z`; a waiter's
// first liveness check (after 5 ms) took that for death, reclaimed the holder and was granted, and
// the holder's commit then failed with a stale token. Here the waiter must time out instead, and
// the holder's worker thread must still commit.
TEST_F(ShmClaimTest, HolderWhoseMainThreadExitedKeepsItsLock) {
  auto c = attach();
  auto s = c->create("s");
  ASSERT_TRUE(s);
  auto holder = Child::spawn([&](Channel& ch) {
    auto cc = Client::attach(name_);  // stays on the main thread's stack, which outlives that thread
    if (!cc) {
      ch.send("attach failed: " + cc.status().to_string());
      return 1;
    }
    Client* client = cc->get();
    std::thread([&ch, client] {
      auto l = client->open("s")->lock_all(Mode::kExclusive, in(5s));
      if (!l) {
        ch.send("lock failed: " + l.status().to_string());
        _exit(1);
      }
      ch.send("locked");
      if (ch.receive(60s) != "commit") _exit(2);
      auto st = l->put("a", "written after the main thread exited");
      if (st) st = l->commit();
      ch.send(st ? "committed" : "commit failed: " + st.to_string());
      ch.receive(60s);
      _exit(0);
    }).detach();
    exit_this_thread_keeping_stack();
  });
  ASSERT_EQ(holder.channel().receive(), "locked");
  ASSERT_TRUE(eventually([&] { return proc_state(holder.pid()) == 'Z'; })) << "holder's leader never became a zombie";

  // Several liveness slices (5, 10, 20, ... ms) pass within the deadline: each must find it alive.
  auto l = s->lock_all(Mode::kExclusive, in(300ms));
  EXPECT_FALSE(l) << "granted while the holder was alive";
  EXPECT_EQ(sessionbroker::to_string(l.code()), sessionbroker::to_string(ErrorCode::kTimeout));
  if (l) {
    ASSERT_TRUE(l->unlock());
  }
  EXPECT_TRUE(held_by("s", holder.pid()));

  holder.channel().send("commit");
  EXPECT_EQ(holder.channel().receive(), "committed");

  // Once the last thread has gone as well, the holder is dead and the lock passes on.
  holder.channel().send("done");
  EXPECT_EQ(holder.wait(), 0);
  auto after = s->lock({"a"}, Mode::kShared, in(5s));
  ASSERT_TRUE(after) << after.status().to_string();
  EXPECT_EQ(after->get("a")->value_or(""), "written after the main thread exited");
}

}  // namespace
}  // namespace sbtest
