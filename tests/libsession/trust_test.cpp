// Trust in the segment (issue 12, finding 8): a client refuses a segment another user planted, a
// bad index read from the segment is kCorrupt rather than a wild access, and a segment mutex that
// cannot be locked fails the call instead of letting it run unlocked. Corruptions are made by hand
// in the test's own mapping; calls that could crash the old code run in a forked child, so a crash
// shows as that child's exit status.
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <ctime>
#include <thread>

#include "fast_owner.hpp"
#include "claims/claim_fixture.hpp"
#include "sessionbroker/shm/robust_mutex.hpp"

namespace sbtest {
namespace {

namespace shm = sessionbroker::shm;

class TrustTest : public ShmClaimTest {
 protected:
  // The lock call's error code, from a child (a crash there is 128 + signal, not a test abort).
  // An exclusive lock on a free session takes the fast path, which needs no session mutex
  // (fast_owner.hpp); a shared one always locks the mutex.
  int lock_code_in_child(const std::string& id, Mode mode = Mode::kExclusive) {
    const std::string segment = name_;
    Child child = Child::spawn([segment, id, mode](Channel&) {
      auto c = Client::attach(segment);
      if (!c) return 100 + static_cast<int>(c.code());
      auto s = (*c)->open(id);
      if (!s) return 100 + static_cast<int>(s.code());
      return static_cast<int>(s->lock({"a"}, mode, in(2s)).code());
    });
    return child.wait(20s).value_or(-1);
  }
  // Kills a child that holds the session's mutex, so the next locker gets EOWNERDEAD.
  void die_holding(pthread_mutex_t& m) {
    Child child = Child::spawn([&m](Channel&) { return pthread_mutex_lock(&m) == 0 ? 0 : 1; });
    ASSERT_EQ(child.wait(), 0);
  }
  pthread_mutex_t& session_mutex(const std::string& id) {
    return seg_->session(registry_->open_session(id)->slot).mutex.native;
  }
};

TEST_F(TrustTest, SegmentOwnedByAnotherUserIsRefusedUnlessNamed) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to give the segment to another user";
  ASSERT_EQ(chown(("/dev/shm/" + name_).c_str(), 65534, static_cast<gid_t>(-1)), 0);
  auto refused = Client::attach(name_);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.code(), ErrorCode::kPermissionDenied) << refused.status().to_string();
  setenv("SESSIONBROKER_SEGMENT_OWNER", "65534", 1);
  auto named = Client::attach(name_);
  unsetenv("SESSIONBROKER_SEGMENT_OWNER");
  EXPECT_TRUE(named) << named.status().to_string();
}

TEST_F(TrustTest, HolderListIndexOutOfRangeIsCorruptNotACrash) {
  auto a = attach();
  auto s = a->create("s");
  auto held = s->lock({"a"}, Mode::kExclusive, in(5s));
  ASSERT_TRUE(held);
  seg_->session(registry_->open_session("s")->slot).holders_head = 0x7FFFFFF0u;
  EXPECT_EQ(lock_code_in_child("s"), static_cast<int>(ErrorCode::kCorrupt));
}

// A fast word is read from the segment like any index: one naming a record out of range, or a
// record that names another session, names nobody, and the session is locked as a free one.
TEST_F(TrustTest, FastWordNamingNoRecordOfItsSessionNamesNobody) {
  auto ref = registry_->create_session("s", 0);
  ASSERT_TRUE(ref);
  auto& slot = seg_->session(ref->slot);
  for (std::uint64_t garbage : {sessionbroker::detail::fast::owned(ref->gen, 0x7FFFFFF0u),
                                sessionbroker::detail::fast::owned(ref->gen, 3)}) {
    slot.fast = garbage;  // record 3 is free and names no session
    EXPECT_EQ(lock_code_in_child("s", Mode::kShared), 0);
    EXPECT_EQ(slot.fast, sessionbroker::detail::fast::idle(ref->gen)) << "settled again after the lock's release";
    EXPECT_EQ(lock_code_in_child("s"), 0);
  }
}

TEST_F(TrustTest, UnrecoverableSessionMutexFailsTheCall) {
  ASSERT_TRUE(registry_->create_session("s", 0));
  pthread_mutex_t& m = session_mutex("s");
  die_holding(m);
  ASSERT_EQ(pthread_mutex_lock(&m), EOWNERDEAD);
  ASSERT_EQ(pthread_mutex_unlock(&m), 0);  // not marked consistent: unrecoverable from now on
  EXPECT_EQ(lock_code_in_child("s", Mode::kShared), static_cast<int>(ErrorCode::kCorrupt));
}

TEST_F(TrustTest, GarbageSessionMutexFailsTheCall) {
  ASSERT_TRUE(registry_->create_session("s", 0));
  pthread_mutex_t& m = session_mutex("s");
  m.__data.__kind = 0x7F;  // no mutex type glibc knows
  if (pthread_mutex_trylock(&m) != EINVAL) GTEST_SKIP() << "this glibc does not refuse the forged kind";
  EXPECT_EQ(lock_code_in_child("s", Mode::kShared), static_cast<int>(ErrorCode::kCorrupt));
}

// A repair that throws must not leave the mutex locked for ever: the next locker hears that the
// mutex is unusable (ENOTRECOVERABLE) instead of waiting.
TEST_F(TrustTest, RepairThatThrowsLeavesTheMutexUnusableNotLocked) {
  ASSERT_TRUE(registry_->create_session("s", 0));
  pthread_mutex_t& m = session_mutex("s");
  die_holding(m);
  try {
    shm::RobustGuard g(reinterpret_cast<shm::RobustMutexData&>(m), [] { throw std::runtime_error("repair failed"); });
  } catch (const std::exception&) {
  }
  int rc = 0;
  std::thread other([&] {
    timespec until{};
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 2;
    rc = pthread_mutex_timedlock(&m, &until);
  });
  other.join();
  EXPECT_EQ(rc, ENOTRECOVERABLE) << "timed out: the mutex was left locked";
}

}  // namespace
}  // namespace sbtest
