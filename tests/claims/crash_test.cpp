// Crashes with real processes and SIGKILL: the lock of a dead holder passes on (here without any
// broker: waiters check their holders' liveness), a death inside a critical section is repaired,
// and contended increments from many processes lose nothing.
#include <unistd.h>

#include "claim_fixture.hpp"
#include "guards.hpp"
#include "test_point.hpp"

namespace sbtest {
namespace {

TEST_P(ClaimTest, KilledHolderPassesLockOnWithoutBroker) {
  auto c = attach();
  ASSERT_TRUE(c->create("s"));
  auto holder = Child::spawn([&](Channel& ch) {
    auto cc = Client::attach(name_);
    auto l = (*cc)->open("s")->lock_all(Mode::kExclusive, in(5s));
    ch.send(l ? "granted" : "failed");
    ch.receive(60s);
    return 0;
  });
  ASSERT_EQ(holder.channel().receive(), "granted");
  auto waiter = Child::spawn([&](Channel& ch) {
    auto cc = Client::attach(name_);
    auto l = (*cc)->open("s")->lock_all(Mode::kExclusive, in(10s));
    ch.send(l ? "granted" : "failed " + l.status().to_string());
    ch.receive(20s);  // hold until the test has looked
    return 0;
  });
  ASSERT_TRUE(eventually([&] { return queue_len("s") == 1; }));
  holder.kill9();
  EXPECT_EQ(holder.wait(), 128 + SIGKILL);
  EXPECT_EQ(waiter.channel().receive(5s), "granted");
  EXPECT_TRUE(held_by("s", waiter.pid()));
  waiter.channel().send("done");
  EXPECT_EQ(waiter.wait(), 0);
}

// A client killed while it holds a session's mutex (inside the protocol's critical section): the
// next process to lock that mutex gets EOWNERDEAD, rebuilds the session's lock state from the lock
// records and goes on; the dead client's grant is then reclaimed like any dead holder's.
TEST_F(ShmClaimTest, DeathInsideSessionMutexIsRepaired) {
  auto c = attach();
  auto s = c->create("s");
  { ASSERT_TRUE(s->lock({"a"}, Mode::kExclusive, in(5s))->put("a", "kept")); }
  ASSERT_TRUE(s->release(in(5s)));
  const auto repairs_before = seg_->header().repairs;
  auto dier = Child::spawn([&](Channel& ch) {
    auto cc = Client::attach(name_);
    auto l = (*cc)->open("s")->lock({"a"}, Mode::kShared, in(5s));
    auto seg = sessionbroker::detail::Segment::open(name_);
    auto ref = sessionbroker::detail::Registry(**seg).open_session("s");
    sessionbroker::detail::SessionGuard g(**seg, ref->slot);
    (*seg)->session(ref->slot).holder_count = 77;  // half-done update, then death
    ch.send("inside");
    ch.receive(60s);
    return 0;
  });
  ASSERT_EQ(dier.channel().receive(), "inside");
  dier.kill9();
  dier.wait();
  auto l = s->lock({"a"}, Mode::kExclusive, in(5s));
  ASSERT_TRUE(l) << l.status().to_string();
  EXPECT_GT(seg_->header().repairs, repairs_before);
  EXPECT_EQ(l->get("a")->value_or(""), "kept");
  auto sn = snap("s");
  ASSERT_EQ(sn->holders.size(), 1u);
  EXPECT_EQ(sn->holders[0].pid, getpid());
}

// A release wakes its grantee only after unlocking the session mutex (docs/protocol.md §4, "wakes
// after the mutex"). A holder that dies between the unlock and the wake leaves the waiter granted
// but asleep, and nothing repairs that: the waiter must find its grant by itself when its wait's
// slice ends. The test point kills the holder exactly there (its exit status proves it got there);
// the waiter must report the grant well inside its deadline, and hold the session alone.
TEST_F(ShmClaimTest, HolderDyingBetweenReleaseAndWakeStillPassesTheLockOn) {
  auto c = attach();
  ASSERT_TRUE(c->create("s"));
  auto holder = Child::spawn([&](Channel& ch) {
    auto cc = Client::attach(name_);
    auto s = (*cc)->open("s");
    auto l = s->lock_all(Mode::kExclusive, in(5s));
    ch.send(l ? "granted" : "failed");
    ch.receive(60s);
    sessionbroker::detail::set_test_hook([](sessionbroker::detail::TestPoint p) {
      if (p == sessionbroker::detail::TestPoint::kWakesDeferred) _exit(42);
    });
    (void)l->unlock();  // a revoke is pending: the process lock goes back here (or on the revoke thread)
    (void)s->release(in(5s));
    return 0;
  });
  ASSERT_EQ(holder.channel().receive(), "granted");
  auto waiter = Child::spawn([&](Channel& ch) {
    auto cc = Client::attach(name_);
    auto l = (*cc)->open("s")->lock_all(Mode::kExclusive, in(10s));
    ch.send(l ? "granted" : "failed " + l.status().to_string());
    ch.receive(20s);
    return 0;
  });
  ASSERT_TRUE(eventually([&] { return queue_len("s") == 1; }));
  holder.channel().send("release");
  EXPECT_EQ(holder.wait(), 42);  // died after the unlock, before the wake
  EXPECT_EQ(waiter.channel().receive(3s), "granted");
  EXPECT_TRUE(held_by("s", waiter.pid()));
  waiter.channel().send("done");
  EXPECT_EQ(waiter.wait(), 0);
}

// Many processes increment one counter under exclusive attribute locks, with lock caching and
// revoke requests handing the lock around. Any lost update shows as a final count below the total.
TEST_P(ClaimTest, NoLostUpdatesUnderContention) {
  auto c = attach();
  ASSERT_TRUE(c->create("counter"));
  constexpr int kWorkers = 4, kIncrements = 200;
  std::vector<Child> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.push_back(Child::spawn([&](Channel&) {
      auto cc = Client::attach(name_);
      auto s = (*cc)->open("counter");
      for (int i = 0; i < kIncrements; ++i) {
        auto l = s->lock({"n"}, Mode::kExclusive, in(20s));
        if (!l) return 10;
        auto v = l->get("n");
        if (!v) return 11;
        const int n = v->has_value() ? std::stoi(**v) : 0;
        if (!l->put("n", std::to_string(n + 1)) || !l->unlock()) return 12;
      }
      return 0;
    }));
  }
  for (auto& w : workers) EXPECT_EQ(w.wait(60s), 0);
  auto l = c->open("counter")->lock({"n"}, Mode::kShared, in(5s));
  ASSERT_TRUE(l);
  EXPECT_EQ(l->get("n")->value_or("0"), std::to_string(kWorkers * kIncrements));
}

}  // namespace
}  // namespace sbtest
