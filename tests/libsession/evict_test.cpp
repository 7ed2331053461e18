// Eviction (Admin::evict_client, sessionctl evict-client) with real processes: the evicted
// process loses its locks to the queue, hears kLost, can take no new lock, and frees its slot when
// it detaches; eviction racing a process that locks in a loop never leaves it a lock.
#include <atomic>
#include <thread>

#include <fmt/format.h>

#include "claims/claim_fixture.hpp"

namespace sbtest {
namespace {

using sessionbroker::RevokeEvent;

class EvictTest : public ShmClaimTest {
 protected:
  // Evicts the client of `pid`; returns the records broken or cancelled, or -1.
  int evict(pid_t pid) {
    auto c = admin_->find_client(pid);
    if (!c) return -1;
    auto n = admin_->evict_client(*c, seg_->client(*c).generation);
    return n ? *n : -1;
  }
  bool attached(pid_t pid) { return admin_->find_client(pid).has_value(); }
};

TEST_F(EvictTest, EvictedHolderLosesItsLockToTheWaiterAndTakesNoMore) {
  auto c = attach();
  ASSERT_TRUE(c->create("s"));
  auto victim = Child::spawn([&](Channel& ch) {
    auto cc = Client::attach(name_);
    std::atomic<int> lost{0};
    (*cc)->on_revoke([&](const RevokeEvent& e) {
      if (e.kind == RevokeEvent::Kind::kLost) ++lost;
    });
    auto s = (*cc)->open("s");
    auto l = s->lock_all(Mode::kExclusive, in(5s));
    ch.send(l ? "granted" : "failed");
    ch.receive(20s);  // evicted meanwhile
    // kLost comes from the revoke thread, woken by the eviction: wait for it, not for a race.
    (void)eventually([&] { return lost.load() > 0; }, 10s);
    const auto put = l->put("k", "from the evicted process");
    const auto again = (*cc)->open("s");
    ch.send(fmt::format("lost={} put={} open={}", lost.load(), static_cast<int>(put.code()),
                        static_cast<int>(again.code())));
    ch.receive(20s);
    return (*cc)->detach() ? 0 : 1;
  });
  ASSERT_EQ(victim.channel().receive(), "granted");
  auto s = c->open("s");
  std::uint64_t victim_token = snap("s")->holders.at(0).token;
  std::optional<sessionbroker::Result<sessionbroker::SessionLock>> mine;
  std::thread waiter([&] { mine.emplace(s->lock_all(Mode::kExclusive, in(20s))); });
  ASSERT_TRUE(eventually([&] { return queue_len("s") == 1; }));
  EXPECT_EQ(evict(victim.pid()), 1);
  waiter.join();
  ASSERT_TRUE(*mine) << mine->status().to_string();
  EXPECT_GT((*mine)->token(), victim_token);
  victim.channel().send("go");
  const auto report = victim.channel().receive(20s);
  ASSERT_TRUE(report);
  const int detached = static_cast<int>(ErrorCode::kDetached);
  EXPECT_EQ(*report, fmt::format("lost=1 put={} open={}", detached, detached));
  EXPECT_FALSE(attached(victim.pid()));
  EXPECT_EQ(seg_->header().client_count, 2u) << "the evicted slot stays taken until its owner detaches";
  victim.channel().send("detach");
  EXPECT_EQ(victim.wait(), 0);
  EXPECT_EQ(seg_->header().client_count, 1u);
}

TEST_F(EvictTest, EvictedWaiterLeavesTheQueue) {
  auto c = attach();
  auto s = c->create("s");
  auto held = s->lock_all(Mode::kExclusive, in(5s));
  ASSERT_TRUE(held);
  auto victim = Child::spawn([&](Channel& ch) {
    auto cc = Client::attach(name_);
    auto l = (*cc)->open("s")->lock_all(Mode::kExclusive, in(20s));
    ch.send(l ? "granted" : std::to_string(static_cast<int>(l.code())));
    return 0;
  });
  ASSERT_TRUE(eventually([&] { return queue_len("s") == 1; }));
  EXPECT_EQ(evict(victim.pid()), 1);
  const auto answer = victim.channel().receive(20s);
  ASSERT_TRUE(answer);
  EXPECT_NE(*answer, "granted");
  EXPECT_EQ(queue_len("s"), 0u);
  EXPECT_EQ(victim.wait(), 0);
}

// The eviction handshake (admin.cpp / withdraw_if_evicted): a process taking and giving back
// locks as fast as it can is evicted in the middle; afterwards it holds nothing, for good.
TEST_F(EvictTest, EvictionRacingALockLoopLeavesNoLock) {
  auto c = attach();
  for (const char* id : {"a", "b"}) ASSERT_TRUE(c->create(id));
  auto victim = Child::spawn([&](Channel& ch) {
    auto cc = Client::attach(name_);
    auto a = (*cc)->open("a");
    auto b = (*cc)->open("b");
    ch.send("running");
    for (int i = 0;; ++i) {
      auto& s = i % 2 ? *a : *b;
      auto l = s.lock_all(Mode::kExclusive, in(5s));
      if (!l) {
        ch.send(std::to_string(static_cast<int>(l.code())));
        ch.receive(20s);
        return 0;
      }
      (void)l->unlock();
      (void)s.release(in(5s));
    }
  });
  ASSERT_EQ(victim.channel().receive(), "running");
  ASSERT_GE(evict(victim.pid()), 0);
  EXPECT_EQ(victim.channel().receive(20s), std::to_string(static_cast<int>(ErrorCode::kDetached)));
  for (const char* id : {"a", "b"}) {
    EXPECT_FALSE(held_by(id, victim.pid())) << id;
    EXPECT_TRUE(c->open(id)->lock_all(Mode::kExclusive, in(5s))) << id;
  }
  victim.channel().send("exit");
  EXPECT_EQ(victim.wait(), 0);
}

TEST_F(EvictTest, KilledEvictedClientIsReclaimed) {
  auto victim = Child::spawn([&](Channel& ch) {
    auto cc = Client::attach(name_);
    ch.send("attached");
    ch.receive(60s);
    return 0;
  });
  ASSERT_EQ(victim.channel().receive(), "attached");
  ASSERT_EQ(evict(victim.pid()), 0);
  EXPECT_EQ(seg_->header().client_count, 1u);
  victim.kill9();
  victim.wait();
  EXPECT_EQ(registry_->reclaim_all_dead(), 1);
  EXPECT_EQ(seg_->header().client_count, 0u);
}

TEST_F(EvictTest, EvictingAnUnknownOrStaleClientIsNotFound) {
  auto c = attach();
  const auto slot = admin_->find_client(getpid());
  ASSERT_TRUE(slot);
  EXPECT_EQ(admin_->evict_client(*slot, seg_->client(*slot).generation + 1).code(), ErrorCode::kNotFound);
  EXPECT_FALSE(admin_->find_client(1));
}

}  // namespace
}  // namespace sbtest
