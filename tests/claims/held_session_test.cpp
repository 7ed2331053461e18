// What a session framework does with a held session: discard writes on an exception, set and renew
// its expiry, read what is left of it, destroy it under the lock, and create-if-absent. Every
// operation under a lock is fenced: a stale grant changes nothing (kStaleToken).
#include <set>
#include <unistd.h>

#include "claim_fixture.hpp"
#include "clock.hpp"

namespace sbtest {
namespace {

using namespace std::chrono_literals;
using sessionbroker::kNeverExpires;
using sessionbroker::detail::mono_ns;

TEST_P(ClaimTest, DiscardDropsUncommittedWritesAndUnlocks) {
  auto c = attach();
  auto s = c->create("s");
  {
    auto l = s->lock({"a"}, Mode::kExclusive, in(5s));
    ASSERT_TRUE(l->put("a", "kept"));
  }
  auto l = s->lock({"a"}, Mode::kExclusive, in(5s));
  ASSERT_TRUE(l->put("a", "dropped"));
  ASSERT_TRUE(l->discard());
  EXPECT_FALSE(l->locked());
  EXPECT_EQ(l->discard().code(), ErrorCode::kNotHeld);
  auto r = s->lock({"a"}, Mode::kShared, in(5s));
  EXPECT_EQ(r->get("a")->value_or(""), "kept");
}

// The broker expires by the TTL a holder set (Registry::expire_if_idle is the broker's pass), not by
// the one the session was created with; the TTL counts from the set_ttl.
TEST_F(ShmClaimTest, ATtlSetUnderALockIsWhatTheBrokerExpiresBy) {
  auto c = attach();
  auto s = c->create("s", 1ms);
  const std::uint64_t set_at = mono_ns();
  {
    auto l = s->lock_all(Mode::kExclusive, in(5s));
    ASSERT_TRUE(l->set_ttl(1h));
  }
  ASSERT_TRUE(s->release(in(5s)));
  EXPECT_EQ(snap("s")->ttl_ms, 3'600'000u);
  const std::uint32_t slot = registry_->open_session("s")->slot;
  EXPECT_EQ(registry_->expire_if_idle(slot, mono_ns() + 60'000'000'000ull), std::nullopt) << "expired by the old TTL";
  EXPECT_EQ(registry_->expire_if_idle(slot, set_at + 7'200'000'000'000ull), "s");
}

TEST_F(ShmClaimTest, SetTtlZeroMeansTheSegmentDefault) {
  auto caps = small_caps();
  caps.default_ttl_ms = 90'000;
  create(caps);
  auto c = attach();
  auto s = c->create("s", 5s);
  auto l = s->lock_all(Mode::kExclusive, in(5s));
  ASSERT_TRUE(l->set_ttl(0ms));
  EXPECT_EQ(snap("s")->ttl_ms, 90'000u);
  EXPECT_EQ(l->set_ttl(-1ms).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(snap("s")->ttl_ms, 90'000u);
}

// touch() restarts the idle clock: with the last use moved back to the clock's start, less is
// left (a TTL minus the host's uptime, or nothing); after touch, more is left than before.
TEST_F(ShmClaimTest, TouchRestartsTheIdleClock) {
  auto c = attach();
  auto s = c->create("s", 1h);
  const std::uint32_t slot = registry_->open_session("s")->slot;
  auto l = s->lock({"a"}, Mode::kShared, in(5s));
  sessionbroker::shm::store(seg_->session(slot).last_used_ns, std::uint64_t{0});
  auto before = l->ttl_remaining();
  ASSERT_TRUE(before);
  ASSERT_TRUE(l->touch());
  auto after = l->ttl_remaining();
  ASSERT_TRUE(after);
  EXPECT_GT(*after, *before);
  EXPECT_LE(*after, 1h);
  EXPECT_GT(sessionbroker::shm::load(seg_->session(slot).last_used_ns), 0u);
}

// A release reads no clock: it marks the session used (kUsedNow), the slow release and the lane's
// fast one alike. A holder and the tools read an undated mark as "now"; the broker's expiry pass
// dates it to its own clock, and the TTL counts from that pass.
TEST_F(ShmClaimTest, AReleaseMarksTheSessionUsedAndTheBrokersPassDatesIt) {
  namespace shm = sessionbroker::shm;
  auto c = attach();
  auto s = c->create("s", 1h);
  const std::uint32_t slot = registry_->open_session("s")->slot;
  std::uint64_t& last = seg_->session(slot).last_used_ns;
  for (int round = 0; round < 2; ++round) {  // the first release takes the mutex path, the second the lane's
    shm::store(last, std::uint64_t{7});
    ASSERT_TRUE(s->lock({"a"}, Mode::kExclusive, in(5s)));
    ASSERT_TRUE(s->release(in(5s)));
    EXPECT_EQ(shm::load(last), shm::kUsedNow) << "release " << round;
  }
  {
    auto l = s->lock({"a"}, Mode::kShared, in(5s));
    ASSERT_TRUE(l);
    ASSERT_EQ(shm::load(last), shm::kUsedNow);
    auto left = l->ttl_remaining();
    ASSERT_TRUE(left);
    EXPECT_GT(*left, 59min);
    EXPECT_LE(*left, 1h);
    EXPECT_EQ(admin_->snapshot(slot)->idle_ms, 0u);
  }
  ASSERT_TRUE(s->release(in(5s)));
  ASSERT_TRUE(c->detach());  // its revoke thread, which marks thread unlocks, marks no more
  ASSERT_EQ(shm::load(last), shm::kUsedNow);
  const std::uint64_t pass = mono_ns() + 7'200'000'000'000ull;  // a pass two hours on, past the TTL
  EXPECT_EQ(registry_->expire_if_idle(slot, pass), std::nullopt) << "a use not yet dated counts as now";
  EXPECT_EQ(shm::load(last), pass);
  EXPECT_EQ(registry_->expire_if_idle(slot, pass + 3'599'000'000'000ull), std::nullopt);
  EXPECT_EQ(registry_->expire_if_idle(slot, pass + 3'601'000'000'000ull), "s");
}

TEST_F(ShmClaimTest, TtlRemainingOfASessionThatNeverExpiresIsTheSentinel) {
  auto c = attach();
  auto s = c->create("s");  // small_caps: the segment's default TTL is 0, "never"
  auto l = s->lock({"a"}, Mode::kShared, in(5s));
  auto left = l->ttl_remaining();
  ASSERT_TRUE(left);
  EXPECT_EQ(*left, kNeverExpires);
  EXPECT_EQ(kNeverExpires.count(), -1);
}

// A grant broken by an operator (break-lock) is stale: no TTL is set, no clock restarted, nothing
// read, nothing destroyed.
TEST_F(ShmClaimTest, AStaleGrantCannotSetTheTtlTouchOrDestroy) {
  auto c = attach();
  auto s = c->create("s", 1h);
  auto l = s->lock_all(Mode::kExclusive, in(5s));
  ASSERT_TRUE(l);
  auto broken = admin_->break_session_locks(*registry_->open_session("s"));
  ASSERT_TRUE(broken);
  ASSERT_EQ(broken->size(), 1u);
  const std::uint32_t slot = registry_->open_session("s")->slot;
  sessionbroker::shm::store(seg_->session(slot).last_used_ns, std::uint64_t{7});
  EXPECT_EQ(l->set_ttl(5ms).code(), ErrorCode::kStaleToken);
  EXPECT_EQ(l->touch().code(), ErrorCode::kStaleToken);
  EXPECT_EQ(l->ttl_remaining().code(), ErrorCode::kStaleToken);
  EXPECT_EQ(snap("s")->ttl_ms, 3'600'000u);
  EXPECT_EQ(sessionbroker::shm::load(seg_->session(slot).last_used_ns), 7u);
  EXPECT_EQ(l->destroy().code(), ErrorCode::kStaleToken);
  EXPECT_FALSE(l->locked());
  EXPECT_TRUE(c->open("s")) << "a stale grant destroyed the session";
  EXPECT_TRUE(s->lock_all(Mode::kExclusive, in(5s))) << "the session is usable after the stale destroy";
}

TEST_F(ShmClaimTest, DestroyUnderAWholeExclusiveLock) {
  auto c = attach();
  auto s = c->create("s");
  auto part = s->lock({"a"}, Mode::kExclusive, in(5s));
  EXPECT_EQ(part->destroy().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(part->locked()) << "a refused destroy keeps the lock";
  ASSERT_TRUE(part->unlock());
  auto shared = s->lock_all(Mode::kShared, in(5s));
  EXPECT_EQ(shared->destroy().code(), ErrorCode::kInvalidArgument);
  ASSERT_TRUE(shared->unlock());
  auto l = s->lock_all(Mode::kExclusive, in(5s));
  ASSERT_TRUE(l->put("a", "committed"));
  ASSERT_TRUE(l->commit());
  ASSERT_LT(seg_->header().free_count, seg_->caps().block_count);
  ASSERT_TRUE(l->put("a", "pending"));
  ASSERT_TRUE(l->destroy());
  EXPECT_FALSE(l->locked());
  EXPECT_EQ(c->open("s").code(), ErrorCode::kNotFound);
  EXPECT_EQ(s->lock_all(Mode::kShared, in(1s)).code(), ErrorCode::kNotFound);
  EXPECT_EQ(seg_->header().free_count, seg_->caps().block_count) << "the session's blocks were not freed";
  auto again = c->open_or_create("s");
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->created);
  EXPECT_FALSE(again->session.lock({"a"}, Mode::kShared, in(5s))->get("a").value().has_value());
}

// Another process waiting for the session when the holder destroys it hears "not found".
TEST_P(ClaimTest, DestroyUnderALockSendsWaitersAway) {
  auto c = attach();
  auto s = c->create("s");
  auto l = s->lock_all(Mode::kExclusive, in(5s));
  auto waiter = Child::spawn([&](Channel& ch) {
    auto cc = Client::attach(name_);
    auto w = (*cc)->open("s")->lock_all(Mode::kShared, in(20s));
    ch.send(std::string(sessionbroker::to_string(w.code())));
    return 0;
  });
  ASSERT_TRUE(eventually([&] { return queue_len("s") == 1; }));
  ASSERT_TRUE(l->destroy());
  EXPECT_EQ(waiter.channel().receive(), "not found");
  EXPECT_EQ(waiter.wait(), 0);
}

TEST_P(ClaimTest, OpenOrCreateOpensWhatExists) {
  auto c = attach();
  auto first = c->open_or_create("s", 5s);
  ASSERT_TRUE(first);
  EXPECT_TRUE(first->created);
  EXPECT_EQ(snap("s")->ttl_ms, 5000u);
  auto second = c->open_or_create("s", 9s);
  ASSERT_TRUE(second);
  EXPECT_FALSE(second->created);
  EXPECT_EQ(snap("s")->ttl_ms, 5000u) << "opening changed the TTL";
  EXPECT_EQ(c->open_or_create("", 0ms).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(c->open_or_create("t", -1ms).code(), ErrorCode::kInvalidArgument);
}

// Processes racing on one id all succeed and exactly one creates: no kAlreadyExists, no kNotFound
// (an open-then-create would give one of those to the loser of the race).
TEST_P(ClaimTest, OpenOrCreateRacingProcessesCreateOnce) {
  constexpr int kProcs = 6;
  constexpr int kRounds = 20;
  std::vector<Child> children;
  for (int p = 0; p < kProcs; ++p) {
    children.push_back(Child::spawn([&](Channel& ch) {
      auto cc = Client::attach(name_);
      if (!cc) return 10;
      ch.receive();  // start together
      for (int r = 0; r < kRounds; ++r) {
        auto s = (*cc)->open_or_create("race-" + std::to_string(r));
        if (!s) return ch.send(s.status().to_string()), 11;
        if (s->created) ch.send("created " + std::to_string(r));
      }
      ch.send("end");
      return 0;
    }));
  }
  for (auto& child : children) child.channel().send("go");
  std::multiset<std::string> created;
  for (auto& child : children) {
    for (;;) {
      auto line = child.channel().receive();
      ASSERT_TRUE(line);
      if (*line == "end") break;
      created.insert(*line);
    }
    EXPECT_EQ(child.wait(), 0);
  }
  EXPECT_EQ(created.size(), std::size_t{kRounds});
  for (int r = 0; r < kRounds; ++r) EXPECT_EQ(created.count("created " + std::to_string(r)), 1u) << "round " << r;
}

}  // namespace
}  // namespace sbtest
