// Statistics kept in the segment (client_stats.hpp): each event the lock path counts shows up in
// collect_stats(), histograms fill, and totals only grow across detach.
#include "claims/claim_fixture.hpp"
#include "stats.hpp"

namespace sbtest {
namespace {

using sessionbroker::shm::Counter;
using sessionbroker::detail::collect_stats;

std::uint64_t total(const sessionbroker::detail::SegmentStats& st, Counter c) {
  return st.totals[static_cast<std::size_t>(c)];
}

TEST(LatencyBuckets, EveryValueLiesInItsBucketAndBucketsAreOrdered) {
  using namespace sessionbroker::shm;
  for (std::uint64_t ns : {0ull, 1ull, 63ull, 64ull, 65ull, 100ull, 1000ull, 4095ull, 4096ull, 123456789ull, 1ull << 36}) {
    const std::uint32_t b = latency_bucket(ns);
    EXPECT_LE(latency_bucket_floor(b), ns);
    if (b + 1 < kLatencyBuckets) {
      EXPECT_GT(latency_bucket_floor(b + 1), ns) << ns;
    }
  }
  for (std::uint32_t b = 1; b < kLatencyBuckets; ++b) EXPECT_GT(latency_bucket_floor(b), latency_bucket_floor(b - 1));
  EXPECT_EQ(latency_bucket(~0ull), kLatencyBuckets - 1);
}

TEST(LatencyHistogram, QuantilesComeFromTheRightBucket) {
  sessionbroker::detail::LatencyHistogram h;
  EXPECT_EQ(h.quantile_ns(0.5), 0u);
  h.buckets[sessionbroker::shm::latency_bucket(100)] = 90;
  h.buckets[sessionbroker::shm::latency_bucket(1'000'000)] = 10;
  EXPECT_GE(h.quantile_ns(0.5), 100u);
  EXPECT_LT(h.quantile_ns(0.5), 1000u);
  EXPECT_GE(h.quantile_ns(0.99), 1'000'000u);
  EXPECT_LT(h.quantile_ns(0.99), 1'300'000u);
}

TEST_F(ShmClaimTest, GrantsCommitsAndImmediateWaitsAreCounted) {
  const auto before = collect_stats(*seg_, 10);
  auto c = attach();
  auto s = c->create("s");
  for (int i = 0; i < 3; ++i) {
    auto l = s->lock_all(Mode::kExclusive, in(5s));
    ASSERT_TRUE(l);
    ASSERT_TRUE(l->put("k", std::to_string(i)));
    ASSERT_TRUE(l->unlock());
    ASSERT_TRUE(s->release(in(5s)));
  }
  const auto after = collect_stats(*seg_, 10);
  EXPECT_EQ(total(after, Counter::kGrants) - total(before, Counter::kGrants), 3u);
  EXPECT_EQ(total(after, Counter::kCommits) - total(before, Counter::kCommits), 3u);
  EXPECT_EQ(total(after, Counter::kHandoffs), total(before, Counter::kHandoffs));
  EXPECT_EQ(after.wait.total() - before.wait.total(), 3u);
  EXPECT_EQ(after.handoff.total(), before.handoff.total());
  ASSERT_EQ(after.clients.size(), 1u);
  EXPECT_EQ(after.clients[0].pid, getpid());
  EXPECT_EQ(after.clients[0].since_attach[static_cast<std::size_t>(Counter::kGrants)], 3u);
  ASSERT_EQ(after.sessions.size(), 1u);
  EXPECT_EQ(after.sessions[0].grants, 3u);
  EXPECT_EQ(after.sessions[0].waits, 0u);
  EXPECT_EQ(after.sessions_live, 1u);
  EXPECT_LT(after.blocks_free, after.blocks_total) << "the committed attribute uses a block";
}

// A waiter in another process is counted as a handoff with a handoff latency; the holder's
// release in answer to the revoke request as a revoke; a request that times out as a timeout.
TEST_F(ShmClaimTest, HandoffsRevokesAndTimeoutsAreCounted) {
  auto c = attach();
  auto s = c->create("s");
  auto l = s->lock_all(Mode::kExclusive, in(5s));
  ASSERT_TRUE(l);
  const auto before = collect_stats(*seg_, 10);
  auto waiter = Child::spawn([&](Channel& ch) {
    auto cc = Client::attach(name_);
    auto ss = (*cc)->open("s");
    auto timed_out = ss->lock_all(Mode::kExclusive, in(50ms));
    ch.send(timed_out ? "granted" : timed_out.status().to_string());
    ch.receive(20s);  // the parent lets go now
    auto granted = ss->lock_all(Mode::kExclusive, in(20s));
    ch.send(granted ? "granted" : granted.status().to_string());
    return 0;
  });
  ASSERT_NE(waiter.channel().receive(20s).value_or("granted"), "granted") << "the lock is held: it must time out";
  waiter.channel().send("go");
  ASSERT_TRUE(eventually([&] { return queue_len("s") == 1; }));
  ASSERT_TRUE(l->unlock());  // the revoke request makes this process release
  ASSERT_EQ(waiter.channel().receive(20s), "granted");
  const auto after = collect_stats(*seg_, 10);
  EXPECT_EQ(total(after, Counter::kTimeouts) - total(before, Counter::kTimeouts), 1u);
  EXPECT_EQ(total(after, Counter::kHandoffs) - total(before, Counter::kHandoffs), 1u);
  EXPECT_EQ(total(after, Counter::kRevokes) - total(before, Counter::kRevokes), 1u);
  EXPECT_EQ(after.handoff.total() - before.handoff.total(), 1u);
  ASSERT_FALSE(after.sessions.empty());
  EXPECT_EQ(after.sessions[0].id, "s");
  EXPECT_EQ(after.sessions[0].waits, 2u);
}

TEST_F(ShmClaimTest, TotalsSurviveDetachAndPerClientCountsStartAtZero) {
  {
    auto c = attach();
    auto s = c->create("s");
    ASSERT_TRUE(s->lock_all(Mode::kShared, in(5s)));
  }
  const auto first = collect_stats(*seg_, 10);
  EXPECT_TRUE(first.clients.empty());
  EXPECT_EQ(total(first, Counter::kGrants), 1u);
  auto c = attach();  // reuses the slot
  const auto second = collect_stats(*seg_, 10);
  ASSERT_EQ(second.clients.size(), 1u);
  EXPECT_EQ(second.clients[0].since_attach[static_cast<std::size_t>(Counter::kGrants)], 0u);
  EXPECT_EQ(total(second, Counter::kGrants), 1u);
}

}  // namespace
}  // namespace sbtest
