// Process lifecycle: detach and fork racing the calls of other threads of the same process.
// Pre-fork servers detach, fork and re-attach all day. Each test forces one interleaving that once
// freed attribute blocks twice, let a detached waiter remove another client's queue entry, or let a
// forked child unregister its parent (issue 12, findings 1-3), through a test point
// (libsession/src/test_point.hpp) the test holds, never a fixed sleep.
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "check.hpp"
#include "claims/claim_fixture.hpp"
#include "test_point.hpp"

namespace sbtest {
namespace {

using sessionbroker::Status;
using sessionbroker::detail::TestPoint;

// Test points the test holds: a thread reaching a held point waits there until it is let go.
class Points {
 public:
  Points() {
    current_ = this;
    sessionbroker::detail::set_test_hook(&Points::hook);
  }
  ~Points() {
    release_all();
    sessionbroker::detail::set_test_hook(nullptr);
    current_ = nullptr;
  }
  void hold(TestPoint p) {
    std::lock_guard lk(mu_);
    held_.insert(p);
  }
  void release_all() {
    std::lock_guard lk(mu_);
    held_.clear();
    cv_.notify_all();
  }
  bool reached(TestPoint p) {
    std::lock_guard lk(mu_);
    return reached_.count(p) > 0;
  }

 private:
  static void hook(TestPoint p) {
    Points* self = current_;
    std::unique_lock lk(self->mu_);
    self->reached_.insert(p);
    self->cv_.wait(lk, [&] { return self->held_.count(p) == 0; });
  }
  static inline Points* current_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<TestPoint> held_, reached_;
};

class LifecycleTest : public ShmClaimTest {
 protected:
  void expect_segment_sound() {
    auto report = sessionbroker::detail::check_segment(*seg_);
    for (const auto& f : report.violations) ADD_FAILURE() << f.invariant << ": " << f.detail;
    EXPECT_LE(blobs_->free_blocks(), seg_->caps().block_count) << "a block is on the free list twice";
  }
};

// Finding 1. A thread's unlock is committing (its new chain staged, not yet published) when another
// thread detaches the client. The old detach reclaimed at once, freeing the pending chain, and the
// commit then found its token stale and freed the same chain again: a cycle in the free list.
// Detach must let the commit finish (or fence it) before it reclaims anything.
TEST_F(LifecycleTest, DetachDuringACommitFreesNothingTwice) {
  auto c = attach();
  auto s = c->create("s");
  ASSERT_TRUE(s);
  {
    auto l = s->lock({"a"}, Mode::kExclusive, in(5s));
    ASSERT_TRUE(l);
    ASSERT_TRUE(l->put("a", "before"));
    ASSERT_TRUE(l->unlock());
  }
  Points points;
  points.hold(TestPoint::kCommitStaged);
  const std::string big(3000, 'x');  // several blocks
  Status committed(ErrorCode::kInvalidArgument, "not run");
  std::thread committer([&] {
    auto l = s->lock({"a"}, Mode::kExclusive, in(5s));
    if (!l) return;
    (void)l->put("a", big);
    committed = l->unlock();
  });
  ASSERT_TRUE(eventually([&] { return points.reached(TestPoint::kCommitStaged); }));
  std::atomic<bool> detached{false};
  std::thread detacher([&] {
    (void)c->detach();
    detached = true;
  });
  // The old detach ran to its end here; a fixed one waits at kDetachDraining for the commit.
  ASSERT_TRUE(eventually([&] { return detached.load() || points.reached(TestPoint::kDetachDraining); }));
  points.release_all();
  committer.join();
  detacher.join();
  expect_segment_sound();

  // The commit is all there (acknowledged) or not at all, and every block comes back on destroy.
  auto other = attach();
  auto s2 = other->open("s");
  ASSERT_TRUE(s2);
  {
    auto l = s2->lock({"a"}, Mode::kShared, in(5s));
    ASSERT_TRUE(l);
    EXPECT_EQ(l->get("a")->value_or(""), committed ? big : "before") << committed.to_string();
  }
  ASSERT_TRUE(other->destroy("s", in(5s)));
  EXPECT_EQ(blobs_->free_blocks(), seg_->caps().block_count);
  expect_segment_sound();
}

// Two threads of one client commit on two sessions at once, and the first one's publish fails (its
// lock was broken while its chain was staged). The client slot has one pending_blob: the second
// commit overwrote it and cleared it when it published, so the first found its chain no longer
// named there and did not free it: 13 blocks leaked in a lifecycle torture run. Commits of one
// client must not overlap (ShmBackend::commit_mu_).
TEST_F(LifecycleTest, FailedCommitBesideAnotherSessionsCommitLeaksNothing) {
  auto c = attach();
  auto s1 = c->create("s1");
  auto s2 = c->create("s2");
  ASSERT_TRUE(s1 && s2);
  static std::atomic<int> arrivals;
  static std::mutex mu;
  static std::condition_variable cv;
  static bool let_go;
  arrivals = 0, let_go = false;
  // Only the first commit to reach its staged chain is held there.
  sessionbroker::detail::set_test_hook([](TestPoint p) {
    if (p != TestPoint::kCommitStaged || arrivals.fetch_add(1) != 0) return;
    std::unique_lock lk(mu);
    cv.wait(lk, [] { return let_go; });
  });
  auto let_first_go = [] {
    std::lock_guard lk(mu);
    let_go = true;
    cv.notify_all();
  };
  Status first(ErrorCode::kInvalidArgument, "not run");
  std::thread a([&] {
    auto l = s1->lock({"a"}, Mode::kExclusive, in(5s));
    if (!l) return;
    (void)l->put("a", std::string(3000, 'a'));
    first = l->unlock();
  });
  ASSERT_TRUE(eventually([&] { return arrivals.load() == 1; }));
  auto ref = registry_->open_session("s1");
  ASSERT_TRUE(ref);
  ASSERT_TRUE(admin_->break_session_locks(*ref));  // the first commit will find its token stale
  std::atomic<bool> second_done{false};
  std::thread b([&] {
    auto l = s2->lock({"b"}, Mode::kExclusive, in(5s));
    if (l && l->put("b", std::string(3000, 'b'))) (void)l->unlock();
    second_done = true;
  });
  (void)eventually([&] { return second_done.load(); }, 500ms);  // ends first on the old code; waits here now
  let_first_go();
  a.join();
  b.join();
  sessionbroker::detail::set_test_hook(nullptr);
  EXPECT_EQ(first.code(), ErrorCode::kStaleToken) << first.to_string();
  expect_segment_sound();
}

// Finding 2. A thread of the client waits in the queue of "s" when another thread detaches. The old
// reclaim freed the waiter's record without waking it; the next attacher took the same slot and
// record and queued on "t"; the old waiter's deadline then removed that record from the queue of
// "t". A detach must wake its own waiters and have them leave before the slot can be reused.
TEST_F(LifecycleTest, DetachWithdrawsItsOwnQueuedWaiterBeforeTheSlotIsReused) {
  auto holder = attach();
  auto hs = holder->create("s");
  auto ht = holder->create("t");
  auto held_s = hs->lock({"a"}, Mode::kExclusive, in(5s));
  auto held_t = ht->lock({"a"}, Mode::kExclusive, in(5s));
  ASSERT_TRUE(held_s && held_t);

  auto c = attach();
  auto cs = c->open("s");
  ASSERT_TRUE(cs);
  ErrorCode waiter_code = ErrorCode::kOk;
  std::thread waiter([&] { waiter_code = cs->lock({"a"}, Mode::kExclusive, in(1500ms)).code(); });
  ASSERT_TRUE(eventually([&] { return queue_len("s") == 1; }));
  ASSERT_TRUE(c->detach());

  auto c2 = attach();  // the slot c had, and its first lock record
  auto ct = c2->open("t");
  ASSERT_TRUE(ct);
  std::atomic<bool> granted2{false};
  std::thread waiter2([&] { granted2 = static_cast<bool>(ct->lock({"a"}, Mode::kExclusive, in(20s))); });
  ASSERT_TRUE(eventually([&] { return queue_len("t") == 1; }));
  waiter.join();
  EXPECT_EQ(waiter_code, ErrorCode::kDetached) << "the waiter learns that its client detached";
  EXPECT_EQ(queue_len("t"), 1u) << "c2's request is still queued on t";
  expect_segment_sound();

  ASSERT_TRUE(held_t->unlock());  // the cached lock on t goes to c2 on its revoke request
  waiter2.join();
  EXPECT_TRUE(granted2.load());
  expect_segment_sound();
}

// A lock on an idle session claims the lane and acquires through the backend's lane pair, which
// passes no call gate (Backend::open_kept): the backend's close() does not wait for it. Here it has
// published its grant in the segment (kFastPublished) when another thread detaches the client.
// The detach must still not reclaim under it: the session's own detach waits for the claim
// (LocalSession's Held closes the lane) and gives the grant back, and the backend's detach waits
// for the session's Kept to close. A reclaim under the claim would leave a kGranted record of a
// freed client slot that no one reclaims: the other client's lock below would wait on it.
TEST_F(LifecycleTest, DetachWaitsForALaneClaimInFlight) {
  auto c = attach();
  auto s = c->create("s");
  ASSERT_TRUE(s);
  for (int i = 0; i < 2; ++i) {  // the second cycle leaves the lane kVacant with its Kept open
    ASSERT_TRUE(s->lock({"a"}, Mode::kExclusive, in(5s)));
    ASSERT_TRUE(s->release(in(5s)));
  }
  Points points;
  points.hold(TestPoint::kFastPublished);
  Status claimed(ErrorCode::kInvalidArgument, "not run");
  std::thread claimer([&] {
    auto l = s->lock({"a"}, Mode::kExclusive, in(5s));
    claimed = l.status();
  });
  ASSERT_TRUE(eventually([&] { return points.reached(TestPoint::kFastPublished); }));
  std::atomic<bool> detached{false};
  std::thread detacher([&] {
    (void)c->detach();
    detached = true;
  });
  ASSERT_TRUE(eventually([&] { return points.reached(TestPoint::kDetachDraining); }));
  points.release_all();
  claimer.join();
  detacher.join();
  EXPECT_TRUE(detached.load());
  expect_segment_sound();
  EXPECT_EQ(holder_count("s"), 0u) << claimed.to_string();

  auto other = attach();
  auto s2 = other->open("s");
  ASSERT_TRUE(s2);
  EXPECT_TRUE(s2->try_lock({"a"}, Mode::kExclusive)) << "no holder is left behind by the detached client";
}

// Finding 3. A forked child drops its copy of the parent's Client, then attaches its own. The old
// copy's destructor detached the parent's slot from the child; the child then attached into it, so
// the parent was no longer registered. Both cases: the parent had not locked before the fork (no
// spare lock states), and it had (spare states then kept the child's copy alive).
void ChildDropsParentsClientThenLocksOnItsOwn(const std::string& segment, std::unique_ptr<Client>& parent) {
  Child child = Child::spawn([&](Channel&) {
    parent.reset();
    auto own = Client::attach(segment);
    if (!own) return 2;
    auto s = (*own)->open("x");
    if (!s) return 3;
    {
      auto l = s->lock({"a"}, Mode::kExclusive, in(5s));
      if (!l || !l->put("a", "child") || !l->unlock()) return 4;
    }
    return s->release(in(5s)) ? 0 : 5;
  });
  EXPECT_EQ(child.wait(), 0);
}

TEST_F(LifecycleTest, ForkedChildDroppingTheParentsClientLeavesTheParentAttached) {
  auto c = attach();
  ASSERT_TRUE(c->create("x"));
  ChildDropsParentsClientThenLocksOnItsOwn(name_, c);
  EXPECT_TRUE(admin_->find_client(getpid())) << "the parent is still registered";
  EXPECT_EQ(holder_count("x"), 0u) << "no ghost holder left by the child";
  auto l = c->open("x")->lock({"a"}, Mode::kExclusive, in(2s));
  ASSERT_TRUE(l) << l.status().to_string();
  EXPECT_EQ(l->get("a")->value_or(""), "child");
}

TEST_F(LifecycleTest, ForkedChildDroppingTheParentsClientAfterTheParentLockedLeavesTheParentAttached) {
  auto c = attach();
  auto x = c->create("x");
  ASSERT_TRUE(x);
  ASSERT_TRUE(x->lock({"a"}, Mode::kExclusive, in(5s))->unlock());  // cached, with a spare state
  ChildDropsParentsClientThenLocksOnItsOwn(name_, c);
  EXPECT_TRUE(admin_->find_client(getpid())) << "the parent is still registered";
  auto l = x->lock({"a"}, Mode::kExclusive, in(2s));
  ASSERT_TRUE(l) << l.status().to_string();
  EXPECT_EQ(l->get("a")->value_or(""), "child");
}

}  // namespace
}  // namespace sbtest
