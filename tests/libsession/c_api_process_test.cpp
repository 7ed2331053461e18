// The C API (sessionbroker.h) with other processes: try-lock against a holder in a forked child
// (SB_BUSY, no trace) and timeouts, revoke callbacks, expiry and fencing under a lock, destroy
// under a lock, detach and free in any order, and a forked child's SB_DETACHED.
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "c_api_fixture.hpp"
#include "eventually.hpp"
#include "process.hpp"

namespace sbtest {
namespace {

// A child process holds the session through the C API; a try (timeout 0) is SB_BUSY and leaves
// nothing queued nor asked; a short timeout is SB_TIMEOUT.
TEST_F(CApiTest, TryLockIsBusyAndLeavesNoTraceTimeoutTimesOut) {
  sb_session* s = open_or_create("s");
  auto holder = Child::spawn([&](Channel& ch) {
    sb_client* cc = nullptr;
    sb_session* cs = nullptr;
    sb_lock* cl = nullptr;
    if (sb_attach(name_.c_str(), &cc) != SB_OK || sb_open(cc, "s", 1, &cs) != SB_OK) return 10;
    if (sb_lock_all(cs, SB_EXCLUSIVE, 5000, &cl) != SB_OK) return 11;
    ch.send("held");
    ch.receive(30s);
    sb_unlock(cl);
    sb_session_free(cs);
    sb_client_free(cc);
    return 0;
  });
  ASSERT_EQ(holder.channel().receive(), "held");
  int32_t pid = 0;
  size_t n = 0;
  ASSERT_EQ(sb_session_holders(s, &pid, 1, &n), SB_OK) << sb_last_error();
  EXPECT_EQ(n, 1u);
  EXPECT_EQ(pid, static_cast<int32_t>(holder.pid())) << "the holder named is the child";
  sb_lock* l = nullptr;
  EXPECT_EQ(sb_lock_all(s, SB_SHARED, 0, &l), SB_BUSY);
  const char* names[] = {"a"};
  const size_t lens[] = {1};
  EXPECT_EQ(sb_lock_attrs(s, names, lens, 1, SB_EXCLUSIVE, 0, &l), SB_BUSY);
  EXPECT_EQ(sb_destroy(c_, "s", 1, 0), SB_BUSY);
  auto after = snap("s");
  EXPECT_TRUE(after.queue.empty());
  ASSERT_EQ(after.holders.size(), 1u);
  EXPECT_FALSE(after.holders[0].revoke);
  EXPECT_EQ(after.waits, 0u);
  EXPECT_EQ(sb_lock_attrs(s, names, lens, 1, SB_EXCLUSIVE, 30, &l), SB_TIMEOUT);
  EXPECT_EQ(l, nullptr);
  holder.channel().send("done");
  EXPECT_EQ(holder.wait(), 0);
  ASSERT_EQ(sb_lock_all(s, SB_EXCLUSIVE, 0, &l), SB_OK) << sb_last_error();
  sb_unlock(l);
  sb_session_free(s);
}

struct Heard {
  std::mutex m;
  std::vector<std::pair<int, std::string>> events;
  std::vector<uint64_t> tokens;
};

// The revoke callback hears the request and the release with the session id and the token.
TEST_F(CApiTest, RevokeCallbackHearsRequestAndRelease) {
  Heard heard;
  auto fn = [](void* ctx, int kind, const char* id, size_t n, uint64_t token) {
    auto* h = static_cast<Heard*>(ctx);
    std::lock_guard lk(h->m);
    h->events.emplace_back(kind, std::string(id, n));
    h->tokens.push_back(token);
  };
  ASSERT_EQ(sb_on_revoke(c_, fn, &heard), SB_OK);
  sb_session* s = open_or_create("cart");
  sb_lock* l = lock1(s, "a", SB_EXCLUSIVE);
  const uint64_t token = sb_lock_token(l);
  ASSERT_EQ(sb_unlock(l), SB_OK);  // cached
  auto waiter = Child::spawn([&](Channel& ch) {
    sb_client* cc = nullptr;
    sb_session* cs = nullptr;
    sb_lock* cl = nullptr;
    if (sb_attach(name_.c_str(), &cc) != SB_OK || sb_open(cc, "cart", 4, &cs) != SB_OK) return 10;
    const int rc = sb_lock_all(cs, SB_EXCLUSIVE, 20000, &cl);
    ch.send(sb_code_name(rc));
    if (rc == SB_OK) sb_unlock(cl);
    sb_session_free(cs);
    sb_client_free(cc);
    return 0;
  });
  EXPECT_EQ(waiter.channel().receive(), "ok");
  EXPECT_EQ(waiter.wait(), 0);
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lk(heard.m);
    return heard.events.size() >= 2;
  }));
  std::lock_guard lk(heard.m);
  EXPECT_EQ(heard.events[0], std::make_pair(int{SB_REVOKE_REQUESTED}, std::string("cart")));
  EXPECT_EQ(heard.events[1], std::make_pair(int{SB_REVOKE_RELEASED}, std::string("cart")));
  EXPECT_EQ(heard.tokens[0], token);
  EXPECT_EQ(sb_on_revoke(c_, nullptr, nullptr), SB_OK) << "removing the callback";
  sb_session_free(s);
}

TEST_F(CApiTest, ExpiryUnderALock) {
  sb_session* s = open_or_create("s");  // small_caps: default TTL 0, "never"
  sb_lock* l = lock1(s, "a", SB_SHARED);
  int64_t ms = 0;
  ASSERT_EQ(sb_ttl_remaining(l, &ms), SB_OK);
  EXPECT_EQ(ms, -1) << "-1: never expires";
  ASSERT_EQ(sb_set_ttl(l, 60000), SB_OK);
  EXPECT_EQ(snap("s").ttl_ms, 60000u);
  ASSERT_EQ(sb_touch(l), SB_OK);
  ASSERT_EQ(sb_ttl_remaining(l, &ms), SB_OK);
  EXPECT_GT(ms, 0);
  EXPECT_LE(ms, 60000);
  EXPECT_EQ(sb_set_ttl(l, -5), SB_INVALID_ARGUMENT);
  // Fenced: once the lock is broken, nothing changes.
  ASSERT_TRUE(admin_->break_session_locks(*registry_->open_session("s")));
  EXPECT_EQ(sb_set_ttl(l, 1), SB_STALE_TOKEN);
  EXPECT_EQ(sb_touch(l), SB_STALE_TOKEN);
  EXPECT_EQ(sb_ttl_remaining(l, &ms), SB_STALE_TOKEN);
  EXPECT_EQ(snap("s").ttl_ms, 60000u);
  size_t len;
  int found;
  EXPECT_EQ(sb_get(l, "a", 1, nullptr, 0, &len, &found), SB_STALE_TOKEN);
  EXPECT_EQ(sb_commit(l), SB_STALE_TOKEN);
  sb_unlock(l);  // freed whatever it says
  sb_session_free(s);
}

TEST_F(CApiTest, DestroyUnderALockAndDiscard) {
  sb_session* s = open_or_create("s");
  sb_lock* l = lock1(s, "a", SB_EXCLUSIVE);
  ASSERT_EQ(sb_put(l, "a", 1, "1", 1), SB_OK);
  ASSERT_EQ(sb_commit(l), SB_OK);
  ASSERT_EQ(sb_put(l, "a", 1, "2", 1), SB_OK);
  sb_discard(l);  // drops "2"
  l = lock1(s, "a", SB_EXCLUSIVE);
  EXPECT_EQ(get(l, "a"), "1");
  EXPECT_EQ(sb_destroy_locked(l), SB_INVALID_ARGUMENT) << "not a whole-session lock (and l is freed)";
  sb_lock* all = nullptr;
  ASSERT_EQ(sb_lock_all(s, SB_EXCLUSIVE, 0, &all), SB_OK) << "the refused destroy released its lock";
  ASSERT_EQ(sb_destroy_locked(all), SB_OK);
  sb_session* gone = nullptr;
  EXPECT_EQ(sb_open(c_, "s", 1, &gone), SB_NOT_FOUND);
  sb_session_free(s);
}

// Handles may be freed in any order; after the client is freed (detached) the others fail with
// SB_DETACHED and can still be freed.
TEST_F(CApiTest, DetachAndFreeInAnyOrder) {
  sb_session* s = open_or_create("s");
  sb_lock* l = lock1(s, "a", SB_EXCLUSIVE);
  ASSERT_EQ(sb_detach(c_), SB_OK);
  EXPECT_EQ(sb_detach(c_), SB_OK) << "idempotent";
  sb_session* other = nullptr;
  EXPECT_EQ(sb_open(c_, "s", 1, &other), SB_DETACHED);
  EXPECT_EQ(sb_put(l, "a", 1, "v", 1), SB_DETACHED);
  sb_client_free(c_);
  c_ = nullptr;
  sb_lock* l2 = nullptr;
  EXPECT_EQ(sb_lock_all(s, SB_SHARED, 0, &l2), SB_DETACHED);
  EXPECT_EQ(sb_unlock(l), SB_DETACHED);
  sb_session_free(s);
  EXPECT_EQ(seg_->header().client_count, 0u);
}

// A forked child's copies of the parent's handles refuse every call; the child attaches its own,
// and the parent's registration and lock survive.
TEST_F(CApiTest, ForkedChildGetsDetachedAndAttachesItsOwn) {
  sb_session* s = open_or_create("s");
  sb_lock* l = lock1(s, "a", SB_EXCLUSIVE);
  auto child = Child::spawn([&](Channel&) {
    sb_lock* cl = nullptr;
    sb_session* cs = nullptr;
    size_t len;
    int found;
    if (sb_lock_all(s, SB_SHARED, 0, &cl) != SB_DETACHED) return 1;
    if (sb_open(c_, "s", 1, &cs) != SB_DETACHED) return 2;
    if (sb_get(l, "a", 1, nullptr, 0, &len, &found) != SB_DETACHED) return 3;
    if (sb_unlock(l) != SB_DETACHED) return 4;
    sb_session_free(s);
    sb_client_free(c_);  // the parent's registration is not the child's to touch
    sb_client* own = nullptr;
    if (sb_attach(name_.c_str(), &own) != SB_OK) return 5;
    if (sb_open(own, "s", 1, &cs) != SB_OK) return 6;
    const int busy = sb_lock_all(cs, SB_SHARED, 0, &cl);
    sb_session_free(cs);
    sb_client_free(own);
    return busy == SB_BUSY ? 0 : 7;
  });
  EXPECT_EQ(child.wait(), 0);
  EXPECT_EQ(sb_put(l, "a", 1, "parent", 6), SB_OK);
  EXPECT_EQ(sb_unlock(l), SB_OK) << sb_last_error();
  EXPECT_EQ(snap("s").holders.size(), 1u);
  sb_session_free(s);
}

}  // namespace
}  // namespace sbtest
