// Session::try_lock / try_lock_all: granted at once or kBusy, and a busy try leaves no trace: no
// request queued, no revoke flag raised on a holder, no wait counted, no record kept. Holders in
// other processes are real forked processes; conflicts inside the process are other threads' locks.
#include <thread>
#include <unistd.h>

#include "claim_fixture.hpp"

namespace sbtest {
namespace {

using sessionbroker::Result;
using sessionbroker::RevokeEvent;
using sessionbroker::SessionLock;
using sessionbroker::Status;

// A child that creates (or opens) `id`, locks it whole in `mode` and keeps the thread lock until
// told "done". It reports "held" once it holds, and "requested" if its callback hears a request.
Child spawn_holder(const std::string& segment, const std::string& id, Mode mode) {
  return Child::spawn([segment, id, mode](Channel& ch) {
    auto c = Client::attach(segment);
    if (!c) return 10;
    (*c)->on_revoke([&](const RevokeEvent& e) {
      if (e.kind == RevokeEvent::Kind::kRequested) ch.send("requested");
    });
    auto s = (*c)->open_or_create(id);
    if (!s) return 11;
    auto l = s->session.lock_all(mode, in(10s));
    if (!l) return 12;
    ch.send("held");
    ch.receive(30s);
    return 0;
  });
}

// A child that queues for `id` exclusively (whole session) and reports "granted" or "failed".
Child spawn_exclusive_waiter(const std::string& segment, const std::string& id) {
  return Child::spawn([segment, id](Channel& ch) {
    auto c = Client::attach(segment);
    if (!c) return 10;
    auto s = (*c)->open(id);
    if (!s) return 11;
    auto l = s->lock_all(Mode::kExclusive, in(20s));
    ch.send(l ? "granted" : "failed");
    return l ? 0 : 1;
  });
}

// The store's view of the session is what a waiter would leave behind: the try must leave none.
TEST_F(ShmClaimTest, TryLockOnAHeldSessionIsBusyAndLeavesNoTrace) {
  auto holder = spawn_holder(name_, "s", Mode::kExclusive);
  ASSERT_EQ(holder.channel().receive(), "held");
  auto c = attach();
  auto s = c->open("s");
  ASSERT_TRUE(s);
  const auto before = snap("s");
  const std::uint32_t free_before = seg_->header().free_count;
  EXPECT_EQ(s->try_lock({"a"}, Mode::kShared).code(), ErrorCode::kBusy);
  EXPECT_EQ(s->try_lock_all(Mode::kExclusive).code(), ErrorCode::kBusy);
  const auto after = snap("s");
  ASSERT_TRUE(after);
  EXPECT_TRUE(after->queue.empty()) << "a try-lock was queued";
  ASSERT_EQ(after->holders.size(), 1u);
  EXPECT_FALSE(after->holders[0].revoke) << "a try-lock asked the holder to release";
  EXPECT_EQ(after->waits, before->waits) << "a try-lock counted as a wait";
  EXPECT_EQ(after->grants, before->grants);
  EXPECT_EQ(seg_->header().free_count, free_before);
  EXPECT_FALSE(s->held());
  // Every record of this process is still free: a busy try keeps none (the holder's one is in use).
  std::size_t in_use = 0;
  for (std::uint32_t r = 0; r < seg_->record_count(); ++r)
    if (sessionbroker::shm::state(seg_->record(r)) != sessionbroker::shm::RecordState::kFree) ++in_use;
  EXPECT_EQ(in_use, 1u);
  EXPECT_FALSE(holder.channel().receive(50ms)) << "the holder heard a revoke request";
  holder.channel().send("done");
  EXPECT_EQ(holder.wait(), 0);
}

TEST_P(ClaimTest, TryLockGrantsAtOnceWhenFreeOrCompatible) {
  auto holder = spawn_holder(name_, "s", Mode::kShared);
  ASSERT_EQ(holder.channel().receive(), "held");
  auto c = attach();
  auto s = c->open("s");
  auto l = s->try_lock({"a", "b"}, Mode::kShared);
  ASSERT_TRUE(l) << l.status().to_string();
  EXPECT_GT(l->token(), 0u);
  EXPECT_EQ(snap("s")->holders.size(), 2u);
  ASSERT_TRUE(l->unlock());
  holder.channel().send("done");
  EXPECT_EQ(holder.wait(), 0);
  ASSERT_TRUE(eventually([&] { return holder_count("s") == 1; }));  // the child's went with it
  ASSERT_TRUE(s->release(in(5s)));
  auto x = s->try_lock_all(Mode::kExclusive);
  ASSERT_TRUE(x) << x.status().to_string();
  EXPECT_TRUE(x->put("k", "v"));
  EXPECT_TRUE(x->unlock());
}

// A compatible mode is not enough: a process queued ahead is served first (FIFO), so the try is
// busy, and the queue is as it was.
TEST_P(ClaimTest, TryLockIsBusyWhileAnotherProcessIsQueued) {
  auto holder = spawn_holder(name_, "s", Mode::kShared);
  ASSERT_EQ(holder.channel().receive(), "held");
  auto waiter = spawn_exclusive_waiter(name_, "s");
  ASSERT_TRUE(eventually([&] { return queue_len("s") == 1; }));
  auto c = attach();
  auto s = c->open("s");
  EXPECT_EQ(s->try_lock({"a"}, Mode::kShared).code(), ErrorCode::kBusy);
  auto after = snap("s");
  ASSERT_EQ(after->queue.size(), 1u);
  EXPECT_EQ(after->queue[0].mode, Mode::kExclusive);
  holder.channel().send("done");
  EXPECT_EQ(waiter.channel().receive(), "granted");
  EXPECT_EQ(waiter.wait(), 0);
  EXPECT_EQ(holder.wait(), 0);
}

// Inside the process the try waits for no thread: a conflicting portion is kBusy at once, a
// disjoint one is granted beside it.
TEST_P(ClaimTest, TryLockIsBusyOnAConflictingThreadLockOfThisProcess) {
  auto c = attach();
  auto s = c->create("s");
  auto a = s->lock({"a"}, Mode::kExclusive, in(5s));
  ASSERT_TRUE(a);
  const Status not_run(ErrorCode::kSystem, "not run");
  Result<SessionLock> same = not_run, whole = not_run, other = not_run;
  std::thread t([&] {  // another thread: a SessionLock belongs to the thread that uses it
    same = s->try_lock({"a"}, Mode::kShared);
    whole = s->try_lock_all(Mode::kShared);
    other = s->try_lock({"b"}, Mode::kExclusive);
  });
  t.join();
  EXPECT_EQ(same.code(), ErrorCode::kBusy);
  EXPECT_EQ(whole.code(), ErrorCode::kBusy);
  EXPECT_TRUE(other) << other.status().to_string();
}

// While this process's lock is asked back (another process queued), new thread locks must not
// extend it: a try is busy even on a portion no thread holds.
TEST_P(ClaimTest, TryLockIsBusyWhileTheCachedLockIsAskedBack) {
  auto c = attach();
  auto s = c->create("s");
  auto a = s->lock({"a"}, Mode::kExclusive, in(5s));
  ASSERT_TRUE(a);
  auto waiter = spawn_exclusive_waiter(name_, "s");
  ASSERT_TRUE(eventually([&] { return queue_len("s") == 1; }));
  ASSERT_TRUE(eventually([&] { return s->try_lock({"b"}, Mode::kExclusive).code() == ErrorCode::kBusy; }));
  EXPECT_EQ(queue_len("s"), 1u) << "the try joined the queue";
  ASSERT_TRUE(a->unlock());
  EXPECT_EQ(waiter.channel().receive(), "granted");
  EXPECT_EQ(waiter.wait(), 0);
}

// An idle cached shared lock does not block an exclusive try forever: it is given back (as a
// blocking lock would) and the exclusive lock is taken at once when nobody else holds the session.
TEST_P(ClaimTest, TryLockUpgradesAnIdleCachedSharedLock) {
  auto c = attach();
  auto s = c->create("s");
  ASSERT_TRUE(s->lock({"a"}, Mode::kShared, in(5s)));  // unlocked at once; the process lock stays cached
  ASSERT_TRUE(s->held());
  auto x = s->try_lock({"a"}, Mode::kExclusive);
  ASSERT_TRUE(x) << x.status().to_string();
  ASSERT_EQ(snap("s")->holders.size(), 1u);
  EXPECT_EQ(snap("s")->holders[0].mode, Mode::kExclusive);
}

TEST_P(ClaimTest, TryLockRefusesWhatLockRefuses) {
  auto c = attach();
  auto s = c->create("s");
  EXPECT_EQ(s->try_lock(std::vector<std::string>{}, Mode::kShared).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(s->try_lock({std::string(65, 'a')}, Mode::kShared).code(), ErrorCode::kTooLarge);
  ASSERT_TRUE(c->destroy("s", in(5s)));
  EXPECT_EQ(s->try_lock_all(Mode::kShared).code(), ErrorCode::kNotFound);
  ASSERT_TRUE(c->detach());
  EXPECT_EQ(s->try_lock_all(Mode::kShared).code(), ErrorCode::kDetached);
}

}  // namespace
}  // namespace sbtest
