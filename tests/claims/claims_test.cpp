// One or more tests per row of the mission's claims table (the seed patent's claims, grouped by
// behaviour), each with real processes where the behaviour crosses processes. Invariants are cited
// by their numbers in shm_layout/LAYOUT.md "Invariants". Names start with the claim they cover.
#include <thread>
#include <unistd.h>

#include "claim_fixture.hpp"

namespace sbtest {
namespace {

// Claims 1, 17, 20, 31: locked access to the primary state comes with a token, and the state one
// process commits under its token is what the next holder reads under a larger one.
TEST_P(ClaimTest, Claim01_LockedAccessComesWithTokenAndSharedState) {
  auto c = attach();
  ASSERT_TRUE(c->create("s"));
  auto writer = Child::spawn([&](Channel& ch) {
    auto cc = Client::attach(name_);
    if (!cc) return 10;
    auto s = (*cc)->open("s");
    auto l = s->lock({"cart"}, Mode::kExclusive, in(5s));
    if (!l || l->token() == 0) return 11;
    if (!l->put("cart", "3 apples") || !l->unlock()) return 12;
    ch.send(std::to_string(s->token()));
    return s->release(in(5s)) ? 0 : 13;
  });
  auto line = writer.channel().receive();
  ASSERT_TRUE(line);
  ASSERT_EQ(writer.wait(), 0);
  const std::uint64_t writer_token = std::stoull(*line);
  auto s = c->open("s");
  auto l = s->lock({"cart"}, Mode::kShared, in(5s));
  ASSERT_TRUE(l) << l.status().to_string();
  EXPECT_GT(l->token(), writer_token);
  auto v = l->get("cart");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->value_or("<absent>"), "3 apples");
}

// Claims 6, 13, 9, 16: a free session is granted at once, without queueing.
TEST_P(ClaimTest, Claim06_GrantsAtOnceWhenFree) {
  auto c = attach();
  auto s = c->create("s");
  ASSERT_TRUE(s);
  auto l = s->lock_all(Mode::kExclusive, in(5s));
  ASSERT_TRUE(l);
  EXPECT_TRUE(held_by("s", getpid()));
  EXPECT_EQ(queue_len("s"), 0u);
  if (shm()) {  // the segment counts them; etcd keeps no counters (the empty queue says it)
    EXPECT_EQ(snap("s")->waits, 0u) << "the request was queued";
    EXPECT_EQ(snap("s")->grants, 1u);
  }
}

// Claims 7, 14, 24, 29, 33: a request for a held session is buffered in the queue (not refused,
// not polled) and granted only when the holder lets go.
TEST_P(ClaimTest, Claim07_BuffersRequestsWhileHeld) {
  auto c = attach();
  auto s = c->create("s");
  auto held = s->lock_all(Mode::kExclusive, in(5s));
  ASSERT_TRUE(held);
  auto waiter = Child::spawn([&](Channel& ch) {
    auto cc = Client::attach(name_);
    auto l = (*cc)->open("s")->lock_all(Mode::kExclusive, in(20s));
    ch.send(l ? "granted" : "failed " + l.status().to_string());
    return 0;
  });
  ASSERT_TRUE(eventually([&] { return queue_len("s") == 1; }));
  EXPECT_EQ(snap("s")->queue[0].pid, waiter.pid());
  EXPECT_FALSE(waiter.channel().receive(100ms)) << "granted while the session was held";
  ASSERT_TRUE(held->unlock());  // the revoke request makes the process release now
  EXPECT_EQ(waiter.channel().receive(), "granted");
  EXPECT_EQ(waiter.wait(), 0);
}

// Claims 8, 15, 25, 30, 34: on release, buffered requests are granted in FIFO order, with
// increasing tokens. Each waiter appends its name to an attribute when granted.
TEST_P(ClaimTest, Claim08_GrantsBufferedRequestsInFifoOrder) {
  auto c = attach();
  auto s = c->create("s");
  auto held = s->lock({"order"}, Mode::kExclusive, in(5s));
  ASSERT_TRUE(held);
  std::vector<Child> waiters;
  for (std::string name : {"B", "C", "D", "E"}) {
    waiters.push_back(Child::spawn([&, name](Channel& ch) {
      auto cc = Client::attach(name_);
      auto ss = (*cc)->open("s");
      auto l = ss->lock({"order"}, Mode::kExclusive, in(20s));
      if (!l) return 10;
      const std::uint64_t token = l->token();
      auto cur = l->get("order");
      if (!cur || !l->put("order", cur->value_or("") + name) || !l->unlock()) return 11;
      ch.send(std::to_string(token));
      return 0;
    }));
    const std::size_t expect = waiters.size();
    ASSERT_TRUE(eventually([&] { return queue_len("s") == expect; })) << "waiter " << name << " not queued";
  }
  auto queued = snap("s")->queue;
  for (std::size_t i = 0; i < waiters.size(); ++i) ASSERT_EQ(queued[i].pid, waiters[i].pid()) << "queue position " << i;
  std::uint64_t last = held->token();
  ASSERT_TRUE(held->unlock());
  for (auto& w : waiters) {
    auto line = w.channel().receive();
    ASSERT_TRUE(line);
    EXPECT_GT(std::stoull(*line), last);
    last = std::stoull(*line);
    EXPECT_EQ(w.wait(), 0);
  }
  auto l = s->lock({"order"}, Mode::kShared, in(5s));
  ASSERT_TRUE(l);
  EXPECT_EQ(l->get("order")->value_or(""), "BCDE");
}

// Claims 2, 11: after its access the process keeps the lock (cached): the next thread lock
// reuses the same grant and token without touching the queue.
TEST_P(ClaimTest, Claim02_KeepsLockAfterAccess) {
  auto c = attach();
  auto s = c->create("s");
  std::uint64_t first_token;
  {
    auto l = s->lock({"a"}, Mode::kExclusive, in(5s));
    ASSERT_TRUE(l);
    first_token = l->token();
  }
  EXPECT_TRUE(s->held());
  EXPECT_TRUE(held_by("s", getpid()));
  auto again = s->lock({"b"}, Mode::kExclusive, in(5s));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->token(), first_token);
  if (shm()) {
    EXPECT_EQ(snap("s")->grants, 1u);
  }
}

// Claims 4, 19, 23, 28, 37: a process may give the lock back on its own; giving back a lock it
// does not hold is a clear error.
TEST_P(ClaimTest, Claim04_ReleasesOnItsOwn) {
  auto c = attach();
  auto s = c->create("s");
  { ASSERT_TRUE(s->lock_all(Mode::kExclusive, in(5s))); }
  ASSERT_TRUE(s->release(in(5s)));
  EXPECT_FALSE(s->held());
  EXPECT_EQ(holder_count("s"), 0u);
  EXPECT_EQ(s->release(in(5s)).code(), ErrorCode::kNotHeld);
  // Another process gets it at once now.
  auto other = Child::spawn([&](Channel&) {
    auto cc = Client::attach(name_);
    return (*cc)->open("s")->lock_all(Mode::kExclusive, in(1s)) ? 0 : 1;
  });
  EXPECT_EQ(other.wait(), 0);
}

// Beyond the claims: shared holders together. Consecutive shared waiters at the head of the queue
// are granted together; the exclusive waiter behind them keeps waiting.
TEST_P(ClaimTest, SharedWaitersAtHeadAreGrantedTogether) {
  auto c = attach();
  auto s = c->create("s");
  auto held = s->lock_all(Mode::kExclusive, in(5s));
  ASSERT_TRUE(held);
  auto spawn_waiter = [&](Mode mode) {
    return Child::spawn([&, mode](Channel& ch) {
      auto cc = Client::attach(name_);
      auto l = (*cc)->open("s")->lock_all(mode, in(20s));
      ch.send(l ? "granted" : "failed");
      ch.receive(20s);  // hold until told
      return 0;
    });
  };
  auto r1 = spawn_waiter(Mode::kShared);
  ASSERT_TRUE(eventually([&] { return queue_len("s") == 1; }));
  auto r2 = spawn_waiter(Mode::kShared);
  ASSERT_TRUE(eventually([&] { return queue_len("s") == 2; }));
  auto w = spawn_waiter(Mode::kExclusive);
  ASSERT_TRUE(eventually([&] { return queue_len("s") == 3; }));
  ASSERT_TRUE(held->unlock());
  EXPECT_EQ(r1.channel().receive(), "granted");
  EXPECT_EQ(r2.channel().receive(), "granted");
  EXPECT_EQ(holder_count("s"), 2u);
  EXPECT_EQ(snap("s")->mode, Mode::kShared);
  EXPECT_FALSE(w.channel().receive(100ms)) << "exclusive waiter granted while readers hold";
  r1.channel().send("go");
  r2.channel().send("go");
  EXPECT_EQ(w.channel().receive(), "granted");
  w.channel().send("go");
  EXPECT_EQ(r1.wait(), 0);
  EXPECT_EQ(r2.wait(), 0);
  EXPECT_EQ(w.wait(), 0);
}

// I6: a request that times out leaves no trace in the queue, and the next request is
// granted as soon as the holder releases (no ghost waiter in front of it).
TEST_P(ClaimTest, TimedOutRequestLeavesNoGhostWaiter) {
  auto c = attach();
  auto s = c->create("s");
  auto held = s->lock_all(Mode::kExclusive, in(5s));
  ASSERT_TRUE(held);
  auto impatient = Child::spawn([&](Channel&) {
    auto cc = Client::attach(name_);
    auto l = (*cc)->open("s")->lock_all(Mode::kExclusive, in(100ms));
    return l.code() == ErrorCode::kTimeout ? 0 : 1;
  });
  EXPECT_EQ(impatient.wait(), 0);
  EXPECT_EQ(queue_len("s"), 0u);
  auto patient = Child::spawn([&](Channel& ch) {
    auto cc = Client::attach(name_);
    auto l = (*cc)->open("s")->lock_all(Mode::kExclusive, in(20s));
    ch.send(l ? "granted" : "failed");
    return 0;
  });
  ASSERT_TRUE(eventually([&] { return queue_len("s") == 1; }));
  ASSERT_TRUE(held->unlock());
  EXPECT_EQ(patient.channel().receive(), "granted");
}

// I3: tokens strictly increase across every grant of the segment.
TEST_P(ClaimTest, TokensStrictlyIncreaseAcrossSessions) {
  auto c = attach();
  std::uint64_t last = 0;
  for (int i = 0; i < 20; ++i) {
    auto s = c->create("s" + std::to_string(i));
    ASSERT_TRUE(s);
    auto l = s->lock_all(i % 2 ? Mode::kShared : Mode::kExclusive, in(5s));
    ASSERT_TRUE(l);
    EXPECT_GT(l->token(), last);
    last = l->token();
  }
}

}  // namespace

#ifdef SESSIONBROKER_WITH_ETCD
INSTANTIATE_TEST_SUITE_P(Store, ClaimTest, ::testing::Values(StoreKind::kShm, StoreKind::kEtcd),
                         [](const auto& info) { return to_string(info.param); });
#else
INSTANTIATE_TEST_SUITE_P(Store, ClaimTest, ::testing::Values(StoreKind::kShm),
                         [](const auto& info) { return to_string(info.param); });
#endif

}  // namespace sbtest
