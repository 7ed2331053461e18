// Crashes with real processes and SIGKILL: the lock of a dead holder passes on (here without any
// broker: waiters check their holders' liveness), a death inside a critical section is repaired,
// and contended increments from many processes lose nothing.
#include <unistd.h>

#include "claim_fixture.hpp"
#include "check.hpp"
#include "fast_owner.hpp"
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

// The fast path (fast_owner.hpp, docs/protocol.md §2a) at each of its crash points, with real
// processes: the test point kills the owner there (its exit status proves it got there).
class FastPathTest : public ShmClaimTest {
 protected:
  using TestPoint = sessionbroker::detail::TestPoint;
  // Creates session "s" and has a child lock it exclusively and die at `point` (on the lock at
  // kFastPublished, on the release at kFastReleasing).
  void owner_dies_at(TestPoint point) {
    ASSERT_TRUE(registry_->create_session("s", 0));
    Child dier = Child::spawn([this, point](Channel&) {
      static TestPoint at;
      at = point;
      sessionbroker::detail::set_test_hook([](TestPoint p) {
        if (p == at) _exit(42);
      });
      auto cc = Client::attach(name_);
      auto s = (*cc)->open("s");
      auto l = s->lock_all(Mode::kExclusive, in(5s));
      if (!l || !l->unlock()) return 1;
      (void)s->release(in(5s));
      return 2;  // did not pass the point
    });
    ASSERT_EQ(dier.wait(), 42);
  }
  // The dead owner held nothing: a new client is granted at once, the reclaim frees the dead one,
  // and the segment checks clean with the new client as the one holder.
  void expect_free_at_once() {
    auto c = attach();
    auto s = c->open("s");
    ASSERT_TRUE(s);
    auto l = s->try_lock_all(Mode::kExclusive);
    ASSERT_TRUE(l) << "granted at once: " << l.status().to_string();
    EXPECT_TRUE(held_by("s", getpid()));
    EXPECT_EQ(registry_->reclaim_all_dead(), 1);
    auto report = sessionbroker::detail::check_segment(*seg_);
    EXPECT_TRUE(report.ok()) << (report.violations.empty() ? "" : report.violations[0].detail);
    EXPECT_EQ(report.holders, 1u);
  }
};

// Died after publishing the fast word, before storing kGranted: the word names a kFree record,
// which never held the lock.
TEST_F(FastPathTest, OwnerDyingBeforeItsGrantNeverHeldTheLock) {
  owner_dies_at(TestPoint::kFastPublished);
  const auto ref = *registry_->open_session("s");
  const auto owner = sessionbroker::detail::fast::owner_of(seg_->session(ref.slot).fast);
  ASSERT_TRUE(owner) << "the dead owner's word names its record";
  EXPECT_EQ(seg_->record(*owner).state, static_cast<std::uint32_t>(sessionbroker::shm::RecordState::kFree));
  expect_free_at_once();
  EXPECT_FALSE(sessionbroker::detail::fast::names(*seg_, ref.slot, *owner));
}

// The same death, but nobody asks for the session before the dead client is reclaimed (by the
// broker; here called directly): the reclaim follows the word to its kFree record, so the word is
// idle again before the client slot can be reused.
TEST_F(FastPathTest, ReclaimOfAnOwnerDeadBeforeItsGrantClearsTheWord) {
  owner_dies_at(TestPoint::kFastPublished);
  const auto ref = *registry_->open_session("s");
  ASSERT_TRUE(sessionbroker::detail::fast::owner_of(seg_->session(ref.slot).fast));
  EXPECT_EQ(registry_->reclaim_all_dead(), 1);
  EXPECT_EQ(seg_->session(ref.slot).fast, sessionbroker::detail::fast::idle(ref.gen));
  auto report = sessionbroker::detail::check_segment(*seg_);
  EXPECT_TRUE(report.ok()) << (report.violations.empty() ? "" : report.violations[0].detail);
}

// Died giving a fast grant back, after kReleasing, before the word: no longer a holder, so there is
// no dead holder to wait out.
TEST_F(FastPathTest, OwnerDyingWhileReleasingLeavesNoHolder) {
  owner_dies_at(TestPoint::kFastReleasing);
  expect_free_at_once();
}

// An owner stalled between publishing the word and storing kGranted while another process asks:
// the other request absorbs the word and, the record being kFree, is granted at once. The owner
// then stores kGranted, finds the word taken and its record on no list, and asks again under the
// mutex: it queues behind the one that came meanwhile (never two holders), and gets a newer token.
TEST_F(FastPathTest, OwnerAbsorbedBeforeItsGrantAsksAgainBehind) {
  auto c = attach();
  ASSERT_TRUE(c->create("s"));
  auto owner = Child::spawn([&](Channel& ch) {
    static Channel* chan;
    chan = &ch;
    sessionbroker::detail::set_test_hook([](sessionbroker::detail::TestPoint p) {
      if (p != sessionbroker::detail::TestPoint::kFastPublished) return;
      chan->send("published");
      chan->receive(30s);
    });
    auto cc = Client::attach(name_);
    auto s = (*cc)->open("s");
    auto l = s->lock_all(Mode::kExclusive, in(10s));
    sessionbroker::detail::set_test_hook(nullptr);
    if (!l) return 1;
    auto v = l->get("who");
    ch.send(std::to_string(s->token()) + " " + (v && *v ? **v : "nobody"));
    return 0;
  });
  ASSERT_EQ(owner.channel().receive(), "published");
  auto other = Child::spawn([&](Channel& ch) {
    auto cc = Client::attach(name_);
    auto s = (*cc)->open("s");
    auto l = s->lock_all(Mode::kExclusive, in(10s));
    if (!l || !l->put("who", "other") || !l->commit()) return 1;
    ch.send(std::to_string(s->token()));
    ch.receive(30s);
    return l->unlock() ? 0 : 2;  // the owner's revoke request then takes the process lock back
  });
  const std::string other_token = other.channel().receive(10s).value_or("");
  ASSERT_FALSE(other_token.empty());
  EXPECT_TRUE(held_by("s", other.pid()));
  owner.channel().send("go");
  ASSERT_TRUE(eventually([&] { return queue_len("s") == 1; })) << "the owner queues behind";
  EXPECT_FALSE(held_by("s", owner.pid()));
  other.channel().send("done");
  EXPECT_EQ(other.wait(), 0);
  const std::string got = owner.channel().receive(10s).value_or("");
  EXPECT_EQ(owner.wait(), 0);
  ASSERT_NE(got.find(' '), std::string::npos) << got;
  EXPECT_EQ(got.substr(got.find(' ') + 1), "other");
  EXPECT_GT(std::stoull(got.substr(0, got.find(' '))), std::stoull(other_token));
  auto report = sessionbroker::detail::check_segment(*seg_);
  EXPECT_TRUE(report.ok()) << (report.violations.empty() ? "" : report.violations[0].detail);
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
