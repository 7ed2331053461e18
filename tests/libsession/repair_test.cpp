// Fault injection: a process dies while it holds one of the segment's robust mutexes, having left
// the structure half-updated; the next locker's repair restores its invariants (LAYOUT.md "Repair
// summary": registry I11 and I12, session I1, I4, I8 and I9, allocator I10). The damage here is
// deliberate and worse than any real crash (it scrambles derived data), so the repair must rebuild.
#include <unistd.h>

#include "claims/claim_fixture.hpp"
#include "guards.hpp"

namespace sbtest {
namespace {

using sessionbroker::detail::Segment;

// Runs `damage(segment)` in a child that holds the mutex chosen by `lock` and then dies.
template <class Lock, class Damage>
void die_holding(const std::string& name, Lock lock, Damage damage) {
  auto dier = Child::spawn([&](Channel& ch) {
    auto seg = Segment::open(name);
    auto guard = lock(**seg);
    damage(**seg);
    ch.send("inside");
    ch.receive(60s);
    return 0;
  });
  ASSERT_EQ(dier.channel().receive(), "inside");
  dier.kill9();
  dier.wait();
}

TEST_F(ShmClaimTest, DeathInsideAllocatorIsRepairedWithoutLeaks) {
  auto c = attach();
  auto s = c->create("s");
  { ASSERT_TRUE(s->lock({"a"}, Mode::kExclusive, in(5s))->put("a", std::string(5000, 'a'))); }
  const auto free_after_commit = seg_->header().free_count;
  die_holding(name_, [](Segment& st) { return sessionbroker::detail::alloc_guard(st); },
              [](Segment& seg) {
                seg.header().free_head = 3;      // half-popped list
                seg.header().free_count = 17;    // wrong count
              });
  auto l = s->lock({"a", "b"}, Mode::kExclusive, in(5s));
  ASSERT_TRUE(l);
  EXPECT_EQ(l->get("a")->value_or("").size(), 5000u) << "committed state survived the repair";
  ASSERT_TRUE(l->put("b", "new"));
  ASSERT_TRUE(l->commit());
  ASSERT_TRUE(l->unlock());
  ASSERT_TRUE(c->destroy("s", in(5s)));
  EXPECT_EQ(seg_->header().free_count, seg_->caps().block_count) << "every block is free again";
  EXPECT_GE(free_after_commit, 1u);
}

TEST_F(ShmClaimTest, DeathInsideRegistryRebuildsIndexAndFreeList) {
  auto c = attach();
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(c->create("s" + std::to_string(i)));
  die_holding(name_, [](Segment& st) { return sessionbroker::detail::registry_guard(st); },
              [](Segment& seg) {
                for (std::uint32_t i = 0; i < seg.index_size(); ++i) seg.index_word(i) = sessionbroker::shm::kIndexEmpty;
                seg.header().session_free_head = 0;  // points at a live slot
              });
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(c->open("s" + std::to_string(i))) << i;
  EXPECT_TRUE(c->create("s10"));
  EXPECT_EQ(c->list()->size(), 11u);
  EXPECT_EQ(seg_->header().session_count, 11u);
}

// A client dies while it is a waiter in the middle of the queue; its entry disappears and the
// waiters behind it are granted in order.
TEST_F(ShmClaimTest, DeadWaiterLeavesTheQueue) {
  auto c = attach();
  auto s = c->create("s");
  auto held = s->lock_all(Mode::kExclusive, in(5s));
  std::vector<Child> waiters;
  for (int i = 0; i < 3; ++i) {
    waiters.push_back(Child::spawn([&](Channel& ch) {
      auto cc = Client::attach(name_);
      auto l = (*cc)->open("s")->lock_all(Mode::kExclusive, in(20s));
      ch.send(l ? "granted" : "failed");
      return 0;
    }));
    const std::size_t n = waiters.size();
    ASSERT_TRUE(eventually([&] { return queue_len("s") == n; }));
  }
  waiters[1].kill9();
  waiters[1].wait();
  ASSERT_EQ(registry_->reclaim_all_dead(), 1);
  EXPECT_EQ(queue_len("s"), 2u);
  ASSERT_TRUE(held->unlock());
  EXPECT_EQ(waiters[0].channel().receive(), "granted");
  EXPECT_EQ(waiters[2].channel().receive(), "granted");
}

}  // namespace
}  // namespace sbtest
