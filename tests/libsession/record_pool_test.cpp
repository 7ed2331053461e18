// RecordPool (libsession/src/record_pool.hpp): the lock-free stack of a client's free lock records
// that every acquire takes from and every release gives back to. Threads only (ThreadSanitizer
// runs this file).
#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "record_pool.hpp"

namespace sbtest {
namespace {

using sessionbroker::detail::RecordPool;

TEST(RecordPoolTest, HandsOutEachRecordOnceUntilGivenBack) {
  RecordPool pool(100, 3);
  std::set<std::uint32_t> taken;
  for (int i = 0; i < 3; ++i) {
    auto rec = pool.take();
    ASSERT_TRUE(rec);
    EXPECT_GE(*rec, 100u);
    EXPECT_LT(*rec, 103u);
    EXPECT_TRUE(taken.insert(*rec).second) << *rec << " handed out twice";
  }
  EXPECT_FALSE(pool.take()) << "three records, three taken";
  pool.give(101);
  EXPECT_EQ(pool.take(), 101u);
  EXPECT_FALSE(pool.take());
}

TEST(RecordPoolTest, AnEmptyRangeHasNothingToTake) {
  RecordPool pool(7, 0);
  EXPECT_FALSE(pool.take());
}

// Threads take and give back as fast as they can, each holding up to three records at a time (so
// pops race pushes of the records they just read, the ABA case the tag is for). A record handed to
// two holders at once is caught by the owner table; at the end every record is free exactly once.
TEST(RecordPoolTest, ConcurrentTakersNeverShareARecordAndLoseNone) {
  constexpr std::uint32_t kFirst = 1000, kCount = 8;
  constexpr int kThreads = 4, kRounds = 20000;
  RecordPool pool(kFirst, kCount);
  std::atomic<int> owner[kCount];
  for (auto& o : owner) o.store(-1);
  std::atomic<int> shared{0}, empty{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      std::vector<std::uint32_t> mine;
      for (int i = 0; i < kRounds; ++i) {
        if (mine.size() < 3 && (i % 5) != 4) {
          if (auto rec = pool.take()) {
            if (owner[*rec - kFirst].exchange(t) != -1) shared.fetch_add(1);
            mine.push_back(*rec);
          } else {
            empty.fetch_add(1);
          }
        } else if (!mine.empty()) {
          const std::uint32_t rec = mine.back();
          mine.pop_back();
          owner[rec - kFirst].store(-1);
          pool.give(rec);
        }
      }
      for (std::uint32_t rec : mine) {
        owner[rec - kFirst].store(-1);
        pool.give(rec);
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(shared.load(), 0) << "a record was handed to two holders at once";
  std::set<std::uint32_t> left;
  while (auto rec = pool.take()) ASSERT_TRUE(left.insert(*rec).second) << *rec << " is in the pool twice";
  EXPECT_EQ(left.size(), kCount) << "a record was lost";
}

}  // namespace
}  // namespace sbtest
