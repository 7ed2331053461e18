// The broker as a real process (the session-broker binary): it reclaims dead clients within
// milliseconds, survives its own SIGKILL (a restarted broker adopts the segment and tokens keep
// increasing), expires idle sessions and enforces the revoke deadline.
#include <condition_variable>
#include <csignal>
#include <mutex>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include "broker_child.hpp"
#include "claims/claim_fixture.hpp"

namespace sbtest {
namespace {

using sessionbroker::Clock;
using sessionbroker::RevokeEvent;

// The broker creates the segment itself, so these tests start without the fixture's segment.
class BrokerTest : public ShmClaimTest {
 protected:
  void SetUp() override { name_ = unique_segment_name("broker"); }
  bool start_broker(std::vector<std::string> extra = {}) {
    broker_ = std::make_unique<sessionbroker::broker::BrokerChild>(SESSION_BROKER_BIN, name_, std::move(extra));
    if (!broker_->start()) return false;
    auto seg = sessionbroker::detail::Segment::open(name_);
    if (!seg) return false;
    seg_ = std::move(*seg);
    bind_roles();
    return true;
  }
  std::unique_ptr<sessionbroker::broker::BrokerChild> broker_;
};

TEST_F(BrokerTest, KilledHolderIsReclaimedByTheBroker) {
  ASSERT_TRUE(start_broker());
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
  const auto clients = seg_->header().client_count;
  holder.kill9();
  holder.wait();
  // No waiter is polling here: only the broker can notice, through the holder's pidfd.
  ASSERT_TRUE(eventually([&] { return holder_count("s") == 0; }, 5s));
  EXPECT_EQ(seg_->header().client_count, clients - 1);
  EXPECT_TRUE(c->open("s")->lock_all(Mode::kExclusive, in(1s)));
}

TEST_F(BrokerTest, RestartedBrokerAdoptsSegmentAndTokensKeepIncreasing) {
  ASSERT_TRUE(start_broker());
  auto c = attach();
  auto s = c->create("s");
  std::uint64_t before;
  {
    auto l = s->lock({"a"}, Mode::kExclusive, in(5s));
    ASSERT_TRUE(l->put("a", "survives"));
    before = l->token();
  }
  ASSERT_TRUE(s->release(in(5s)));
  broker_->kill9();
  // Clients keep locking while no broker runs.
  {
    auto l = s->lock({"a"}, Mode::kExclusive, in(5s));
    ASSERT_TRUE(l);
    EXPECT_GT(l->token(), before);
    before = l->token();
  }
  ASSERT_TRUE(s->release(in(5s)));
  ASSERT_TRUE(start_broker());
  auto l = s->lock({"a"}, Mode::kShared, in(5s));
  ASSERT_TRUE(l);
  EXPECT_GT(l->token(), before);
  EXPECT_EQ(l->get("a")->value_or(""), "survives");
  EXPECT_EQ(broker_->terminate(), 0);
  EXPECT_TRUE(sessionbroker::detail::Segment::open(name_)) << "the segment outlives a stop unless --remove-on-exit";
}

TEST_F(BrokerTest, IdleSessionExpires) {
  ASSERT_TRUE(start_broker());
  auto c = attach();
  ASSERT_TRUE(c->create("short", 200ms));
  ASSERT_TRUE(c->create("long", 1h));
  { ASSERT_TRUE(c->open("short")->lock({"a"}, Mode::kExclusive, in(1s))); }  // cached: broker asks it back
  ASSERT_TRUE(eventually([&] { return c->open("short").code() == ErrorCode::kNotFound; }, 10s));
  EXPECT_TRUE(c->open("long"));
}

// Thread locks on a cached process lock go through the fast lane, which reads no clock: the
// revoke thread records their use instead, so a busy session is neither expired nor asked back.
TEST_F(BrokerTest, SessionBusyThroughCachedLockIsNotExpired) {
  ASSERT_TRUE(start_broker());
  auto c = attach();
  std::mutex m;
  std::condition_variable asked;
  int requests = 0;
  c->on_revoke([&](const RevokeEvent& e) {
    if (e.kind != RevokeEvent::Kind::kRequested) return;
    std::lock_guard lk(m);
    ++requests;
    asked.notify_all();
  });
  auto s = c->create("busy", 2500ms);
  ASSERT_TRUE(s);
  // Used every 50 ms for more than twice the TTL; a revoke request (the failure) ends it early.
  const auto until = Clock::now() + 6s;
  std::unique_lock lk(m);
  while (Clock::now() < until && requests == 0) {
    lk.unlock();
    { ASSERT_TRUE(s->lock({"a"}, Mode::kExclusive, in(1s))); }
    lk.lock();
    asked.wait_for(lk, 50ms, [&] { return requests > 0; });
  }
  EXPECT_EQ(requests, 0) << "the broker took a busy session for an idle one";
  lk.unlock();
  EXPECT_TRUE(c->open("busy"));
}

TEST_F(BrokerTest, HolderIgnoringRevokeLosesLockAtDeadline) {
  ASSERT_TRUE(start_broker({"--revoke-deadline", "300ms"}));
  auto c = attach();
  std::atomic<int> lost{0};
  c->on_revoke([&](const RevokeEvent& e) { lost += e.kind == RevokeEvent::Kind::kLost; });
  auto s = c->create("s");
  auto stubborn = s->lock({"a"}, Mode::kExclusive, in(5s));  // never unlocked while the waiter waits
  ASSERT_TRUE(stubborn);
  auto waiter = Child::spawn([&](Channel& ch) {
    auto cc = Client::attach(name_);
    auto l = (*cc)->open("s")->lock({"a"}, Mode::kExclusive, in(20s));
    ch.send(l ? std::to_string(l->token()) : "failed");
    return 0;
  });
  auto line = waiter.channel().receive(10s);
  ASSERT_TRUE(line);
  EXPECT_GT(std::stoull(*line), stubborn->token());
  EXPECT_EQ(stubborn->get("a").code(), ErrorCode::kStaleToken);
  EXPECT_TRUE(eventually([&] { return lost.load() == 1; }));
}

TEST_F(BrokerTest, SigtermWithRemoveOnExitRemovesSegment) {
  ASSERT_TRUE(start_broker({"--remove-on-exit"}));
  EXPECT_EQ(broker_->terminate(), 0);
  EXPECT_EQ(sessionbroker::detail::Segment::open(name_).code(), ErrorCode::kNoSegment);
}

// Finding 9 of issue 12. Clients still mapping a segment that a --remove-on-exit broker unlinked
// used to go on locking in it while a restarted broker created a new one: a client of each could
// hold one session exclusively at the same time. The old segment is retired before it is unlinked:
// its locks are broken and its clients fail with kNoSegment, so only one lock domain exists.
TEST_F(BrokerTest, ClientsOfARemovedSegmentCannotLockBesideANewOne) {
  ASSERT_TRUE(start_broker({"--remove-on-exit"}));
  auto old_client = attach();
  auto old_session = old_client->create("s");
  ASSERT_TRUE(old_session);
  ASSERT_TRUE(old_session->lock({"a"}, Mode::kExclusive, in(5s))->unlock());  // cached
  reset_roles();
  seg_.reset();
  ASSERT_EQ(broker_->terminate(), 0);
  ASSERT_TRUE(start_broker({"--remove-on-exit"}));  // a new segment under the same name
  auto new_client = attach();
  auto new_session = new_client->create("s");
  ASSERT_TRUE(new_session);
  auto new_lock = new_session->lock({"a"}, Mode::kExclusive, in(5s));
  ASSERT_TRUE(new_lock);
  auto old_lock = old_session->lock({"a"}, Mode::kExclusive, in(1s));
  EXPECT_FALSE(old_lock) << "two exclusive holders of s, one in each segment";
  if (!old_lock) {
    EXPECT_EQ(old_lock.code(), ErrorCode::kNoSegment) << old_lock.status().to_string();
  }
  EXPECT_EQ(old_client->open("t").code(), ErrorCode::kNoSegment);
}

}  // namespace
}  // namespace sbtest
