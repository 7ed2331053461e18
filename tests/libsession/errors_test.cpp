// Every bad input gets a typed error with a clear message and leaves the segment as it was.
#include <unistd.h>

#include "claims/claim_fixture.hpp"

namespace sbtest {
namespace {

TEST_F(ShmClaimTest, BadSessionIdsAreRefused) {
  auto c = attach();
  EXPECT_EQ(c->create("").code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(c->create(std::string(129, 'x')).code(), ErrorCode::kTooLarge);
  EXPECT_TRUE(c->create(std::string(128, 'x')));
  EXPECT_EQ(c->create(std::string(128, 'x')).code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(c->open("nope").code(), ErrorCode::kNotFound);
  EXPECT_EQ(c->destroy("nope", in(1s)).code(), ErrorCode::kNotFound);
  EXPECT_EQ(seg_->header().session_count, 1u);
}

TEST_F(ShmClaimTest, BadAttributesAndValuesAreRefused) {
  auto c = attach();
  auto s = c->create("s");
  EXPECT_EQ(s->lock(std::vector<std::string>{}, Mode::kShared, in(1s)).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(s->lock({std::string(65, 'a')}, Mode::kShared, in(1s)).code(), ErrorCode::kTooLarge);
  auto l = s->lock({"a"}, Mode::kExclusive, in(1s));
  ASSERT_TRUE(l);
  EXPECT_EQ(l->put("b", "x").code(), ErrorCode::kInvalidArgument) << "b is not covered by the lock";
  EXPECT_EQ(l->put("a", std::string(c->max_value_bytes() + 1, 'v')).code(), ErrorCode::kTooLarge);
  EXPECT_TRUE(l->put("a", std::string(c->max_value_bytes(), 'v')));
  EXPECT_TRUE(l->commit());
  auto r = s->lock({"z"}, Mode::kShared, in(1s));
  EXPECT_EQ(r->put("z", "x").code(), ErrorCode::kInvalidArgument) << "put needs an exclusive lock";
}

TEST_F(ShmClaimTest, DoubleUnlockAndUseAfterDetachAreErrors) {
  auto c = attach();
  auto s = c->create("s");
  auto l = s->lock({"a"}, Mode::kExclusive, in(1s));
  ASSERT_TRUE(l->unlock());
  EXPECT_EQ(l->unlock().code(), ErrorCode::kNotHeld);
  EXPECT_EQ(l->get("a").code(), ErrorCode::kNotHeld);
  ASSERT_TRUE(c->detach());
  EXPECT_EQ(s->lock({"a"}, Mode::kShared, in(1s)).code(), ErrorCode::kDetached);
  EXPECT_EQ(c->create("t").code(), ErrorCode::kDetached);
  EXPECT_EQ(seg_->header().client_count, 0u);
  EXPECT_EQ(holder_count("s"), 0u) << "detach releases the cached lock";
}

TEST_F(ShmClaimTest, ForkedChildCannotUseParentsHandles) {
  auto c = attach();
  auto s = c->create("s");
  auto child = Child::spawn([&](Channel&) {
    if (s->lock({"a"}, Mode::kShared, in(1s)).code() != ErrorCode::kDetached) return 1;
    auto own = Client::attach(name_);  // the child may attach on its own
    return own && (*own)->open("s")->lock({"a"}, Mode::kShared, in(5s)) ? 0 : 2;
  });
  EXPECT_EQ(child.wait(), 0);
  EXPECT_TRUE(s->lock({"a"}, Mode::kShared, in(5s))) << "the parent's registration survived the child";
}

TEST_F(ShmClaimTest, FullTablesAreCapacityErrors) {
  auto caps = small_caps();
  caps.max_sessions = 2;
  caps.max_clients = 1;
  caps.block_count = 4;
  caps.max_value_bytes = 4 * 252;
  create(caps);
  auto c = attach();
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->create("a"));
  ASSERT_TRUE(c->create("b"));
  EXPECT_EQ(c->create("c").code(), ErrorCode::kCapacityExceeded);
  EXPECT_EQ(Client::attach(name_).code(), ErrorCode::kCapacityExceeded);
  auto l = c->open("a")->lock({"big"}, Mode::kExclusive, in(1s));
  ASSERT_TRUE(l->put("big", std::string(4 * 252, 'x')));
  EXPECT_EQ(l->commit().code(), ErrorCode::kCapacityExceeded);
  EXPECT_EQ(seg_->header().free_count, 4u) << "a failed commit keeps no blocks";
  ASSERT_TRUE(l->put("big", std::string(100, 'x')));
  EXPECT_TRUE(l->commit());
}

TEST_F(ShmClaimTest, RunningOutOfLockRecordsReleasesIdleCachedLocks) {
  auto caps = small_caps();
  caps.locks_per_client = 2;
  create(caps);
  auto c = attach();
  for (int i = 0; i < 5; ++i) {
    auto s = c->create("s" + std::to_string(i));
    auto l = s->lock_all(Mode::kExclusive, in(1s));
    ASSERT_TRUE(l) << i << ": " << l.status().to_string();
  }
}

// A full cycle on an idle session leaves its lock record with the session for the next one
// (Backend::Kept): here both of the process's records end up kept by a and b. A lock on a third
// session takes one back from them, as it gives back an idle cached lock, and so does a's next
// lock; only when both records are in use is a further lock a capacity error.
TEST_F(ShmClaimTest, RunningOutOfLockRecordsTakesBackTheRecordsIdleSessionsKeep) {
  auto caps = small_caps();
  caps.locks_per_client = 2;
  create(caps);
  auto c = attach();
  auto a = c->create("a");
  auto b = c->create("b");
  auto third = c->create("c");
  ASSERT_TRUE(a && b && third);
  for (auto* s : {&*a, &*b})
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(s->lock({"n"}, Mode::kExclusive, in(1s)));
      ASSERT_TRUE(s->release(in(1s)));
    }
  EXPECT_EQ(holder_count("a") + holder_count("b"), 0u);
  auto lc = third->lock({"n"}, Mode::kExclusive, in(1s));
  ASSERT_TRUE(lc) << lc.status().to_string();
  auto la = a->lock({"n"}, Mode::kExclusive, in(1s));
  ASSERT_TRUE(la) << la.status().to_string();
  EXPECT_EQ(b->lock({"n"}, Mode::kExclusive, in(1s)).code(), ErrorCode::kCapacityExceeded);
  ASSERT_TRUE(lc->unlock());
  ASSERT_TRUE(third->release(in(1s)));
  auto lb = b->lock({"n"}, Mode::kExclusive, in(1s));
  EXPECT_TRUE(lb) << lb.status().to_string();
}

// A session destroyed by another process and made again under its name gets a new local state here;
// the old one gives back the record it kept (ClientImpl::session -> drop_spares), or the process
// would be a record short for good.
TEST_F(ShmClaimTest, ASessionMadeAgainGivesBackTheRecordItsOldStateKept) {
  auto caps = small_caps();
  caps.locks_per_client = 2;
  create(caps);
  auto c = attach();
  auto other = attach();
  for (const char* id : {"a", "b"}) {
    auto s = c->create(id);
    ASSERT_TRUE(s);
    ASSERT_TRUE(s->lock({"n"}, Mode::kExclusive, in(1s)));
    ASSERT_TRUE(s->release(in(1s)));
    ASSERT_TRUE(other->destroy(id, in(1s)));
  }
  auto a = c->create("a");
  auto b = c->create("b");
  ASSERT_TRUE(a && b);
  auto la = a->lock({"n"}, Mode::kExclusive, in(1s));
  auto lb = b->lock({"n"}, Mode::kExclusive, in(1s));
  EXPECT_TRUE(la) << la.status().to_string();
  EXPECT_TRUE(lb) << lb.status().to_string();
}

// When every lock record of the process is in use by a thread (nothing idle to give back), a further
// request is a capacity error that leaves the segment as it was.
TEST_F(ShmClaimTest, LockRecordsAllInUseIsACapacityError) {
  auto caps = small_caps();
  caps.locks_per_client = 2;
  create(caps);
  auto c = attach();
  auto a = c->create("a")->lock_all(Mode::kExclusive, in(1s));
  auto b = c->create("b")->lock_all(Mode::kExclusive, in(1s));
  ASSERT_TRUE(a && b);
  auto third = c->create("c");
  EXPECT_EQ(third->lock_all(Mode::kExclusive, in(1s)).code(), ErrorCode::kCapacityExceeded);
  EXPECT_EQ(holder_count("c"), 0u);
  EXPECT_EQ(queue_len("c"), 0u);
  ASSERT_TRUE(a->unlock());
  EXPECT_TRUE(third->lock_all(Mode::kExclusive, in(1s))) << "an idle cached lock is given back to make room";
}

}  // namespace
}  // namespace sbtest
