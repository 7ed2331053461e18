// The C API (sessionbroker.h) called as a C program would: every function, its error paths, the
// per-thread last error, values into the caller's buffer or allocator, callbacks, try-lock, and a
// forked child's SB_DETACHED. Other processes are real forked children using the C API too.
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "eventually.hpp"
#include "process.hpp"
#include "segment_fixture.hpp"
#include "sessionbroker/sessionbroker.h"

namespace sbtest {
namespace {

std::string text(const void* p, size_t n) { return std::string(static_cast<const char*>(p), n); }

class CApiTest : public SegmentTest {
 protected:
  void SetUp() override {
    SegmentTest::SetUp();
    ASSERT_EQ(sb_attach(name_.c_str(), &c_), SB_OK) << sb_last_error();
  }
  void TearDown() override {
    sb_client_free(c_);
    SegmentTest::TearDown();
  }
  sb_session* open_or_create(const std::string& id) {
    sb_session* s = nullptr;
    EXPECT_EQ(sb_open_or_create(c_, id.data(), id.size(), 0, &s, nullptr), SB_OK) << sb_last_error();
    return s;
  }
  sb_lock* lock1(sb_session* s, const char* name, int mode, int64_t timeout_ms = 5000) {
    const char* names[] = {name};
    const size_t lens[] = {std::strlen(name)};
    sb_lock* l = nullptr;
    EXPECT_EQ(sb_lock_attrs(s, names, lens, 1, mode, timeout_ms, &l), SB_OK) << sb_last_error();
    return l;
  }
  std::optional<std::string> get(sb_lock* l, const std::string& name) {
    char buf[256];
    size_t len = 0;
    int found = -1;
    EXPECT_EQ(sb_get(l, name.data(), name.size(), buf, sizeof buf, &len, &found), SB_OK) << sb_last_error();
    if (!found) return std::nullopt;
    return std::string(buf, len);
  }
  sessionbroker::detail::SessionSnapshot snap(const std::string& id) {
    return *store_->snapshot(store_->open_session(id)->slot);
  }
  sb_client* c_ = nullptr;
};

TEST_F(CApiTest, CodesHaveTheErrorCodeNames) {
  EXPECT_STREQ(sb_code_name(SB_OK), "ok");
  EXPECT_STREQ(sb_code_name(SB_STALE_TOKEN), "stale token");
  EXPECT_STREQ(sb_code_name(SB_BUSY), "busy");
  EXPECT_STREQ(sb_code_name(SB_BUSY + 1), "unknown");
  EXPECT_STREQ(sb_code_name(-1), "unknown");
}

TEST_F(CApiTest, AttachToAMissingStoreFailsWithAMessage) {
  sb_client* c = nullptr;
  EXPECT_EQ(sb_attach("sbtest-no-such-segment", &c), SB_NO_SEGMENT);
  EXPECT_EQ(c, nullptr) << "*out is set only on success";
  EXPECT_NE(std::string(sb_last_error()).find("no such segment"), std::string::npos) << sb_last_error();
}

TEST_F(CApiTest, NullHandlesAndPointersAreInvalidArguments) {
  sb_session* s = open_or_create("s");
  sb_lock* l = lock1(s, "a", SB_EXCLUSIVE);
  sb_session* so = nullptr;
  sb_lock* lo = nullptr;
  size_t len = 0;
  int found = 0;
  int64_t ms = 0;
  void* out = nullptr;
  auto alloc = [](void*, size_t n) { return std::malloc(n); };
  auto ids = [](void*, const char*, size_t) { return 0; };
  EXPECT_EQ(sb_attach(nullptr, &c_), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_attach(name_.c_str(), nullptr), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_detach(nullptr), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_on_revoke(nullptr, nullptr, nullptr), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_create(nullptr, "x", 1, 0, &so), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_create(c_, nullptr, 1, 0, &so), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_create(c_, "x", 1, 0, nullptr), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_open(c_, "s", 1, nullptr), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_open_or_create(nullptr, "s", 1, 0, &so, nullptr), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_destroy(nullptr, "s", 1, 0), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_list(c_, nullptr, nullptr), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_list(nullptr, ids, nullptr), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_session_release(nullptr, 0), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_lock_all(nullptr, SB_SHARED, 0, &lo), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_lock_all(s, SB_SHARED, 0, nullptr), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_lock_attrs(s, nullptr, nullptr, 1, SB_SHARED, 0, &lo), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_get(nullptr, "a", 1, nullptr, 0, &len, &found), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_get(l, "a", 1, nullptr, 0, nullptr, &found), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_get(l, "a", 1, nullptr, 0, &len, nullptr), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_get(l, "a", 1, nullptr, 8, &len, &found), SB_INVALID_ARGUMENT) << "NULL buffer with a capacity";
  EXPECT_EQ(sb_get(l, nullptr, 1, nullptr, 0, &len, &found), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_get_alloc(l, "a", 1, nullptr, nullptr, &out, &len, &found), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_get_alloc(l, "a", 1, alloc, nullptr, nullptr, &len, &found), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_get_all(l, nullptr, nullptr), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_put(nullptr, "a", 1, "v", 1), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_put(l, "a", 1, nullptr, 1), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_erase(nullptr, "a", 1), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_commit(nullptr), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_unlock(nullptr), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_set_ttl(nullptr, 0), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_touch(nullptr), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_ttl_remaining(nullptr, &ms), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_ttl_remaining(l, nullptr), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_destroy_locked(nullptr), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_max_value_bytes(nullptr), 0u);
  EXPECT_EQ(sb_session_token(nullptr), 0u);
  EXPECT_EQ(sb_lock_token(nullptr), 0u);
  sb_discard(nullptr);
  sb_session_free(nullptr);
  sb_client_free(nullptr);
  EXPECT_NE(std::string(sb_last_error()), "");
  EXPECT_EQ(so, nullptr);
  EXPECT_EQ(lo, nullptr);
  EXPECT_EQ(sb_unlock(l), SB_OK) << "the lock was still usable after all that";
  sb_session_free(s);
}

TEST_F(CApiTest, SessionsAreCreatedOpenedListedAndDestroyed) {
  sb_session* s = nullptr;
  ASSERT_EQ(sb_create(c_, "s1", 2, 5000, &s), SB_OK);
  EXPECT_EQ(snap("s1").ttl_ms, 5000u);
  sb_session* dup = nullptr;
  EXPECT_EQ(sb_create(c_, "s1", 2, 0, &dup), SB_ALREADY_EXISTS);
  EXPECT_EQ(sb_create(c_, "bad", 3, -1, &dup), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_create(c_, "", 0, 0, &dup), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_create(c_, std::string(129, 'x').data(), 129, 0, &dup), SB_TOO_LARGE);
  EXPECT_EQ(sb_open(c_, "nope", 4, &dup), SB_NOT_FOUND);
  EXPECT_EQ(dup, nullptr);
  int created = -1;
  sb_session* s2 = nullptr;
  ASSERT_EQ(sb_open_or_create(c_, "s2", 2, 0, &s2, &created), SB_OK);
  EXPECT_EQ(created, 1);
  sb_session* s2b = nullptr;
  ASSERT_EQ(sb_open_or_create(c_, "s2", 2, 0, &s2b, &created), SB_OK);
  EXPECT_EQ(created, 0);
  std::vector<std::string> ids;
  auto collect = [](void* ctx, const char* id, size_t n) {
    static_cast<std::vector<std::string>*>(ctx)->emplace_back(id, n);
    return 0;
  };
  ASSERT_EQ(sb_list(c_, collect, &ids), SB_OK);
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()), (std::set<std::string>{"s1", "s2"}));
  int calls = 0;
  ASSERT_EQ(sb_list(c_, [](void* ctx, const char*, size_t) { return ++*static_cast<int*>(ctx); }, &calls), SB_OK);
  EXPECT_EQ(calls, 1) << "a non-zero return stops the listing";
  ASSERT_EQ(sb_destroy(c_, "s1", 2, 5000), SB_OK);
  EXPECT_EQ(sb_destroy(c_, "s1", 2, 5000), SB_NOT_FOUND);
  ASSERT_EQ(sb_destroy(c_, "s2", 2, 0), SB_OK) << "free: a try-destroy succeeds";
  sb_lock* l = nullptr;
  EXPECT_EQ(sb_lock_all(s, SB_SHARED, 1000, &l), SB_NOT_FOUND);
  sb_session_free(s);
  sb_session_free(s2);
  sb_session_free(s2b);
}

TEST_F(CApiTest, ValuesGoIntoTheCallersBufferOrAllocator) {
  sb_session* s = open_or_create("s");
  const char* names[] = {"b", "a", "b", "empty"};
  const size_t lens[] = {1, 1, 1, 5};
  sb_lock* l = nullptr;
  ASSERT_EQ(sb_lock_attrs(s, names, lens, 4, SB_EXCLUSIVE, 5000, &l), SB_OK) << "duplicates are allowed";
  EXPECT_NE(sb_lock_token(l), 0u);
  EXPECT_EQ(sb_session_token(s), sb_lock_token(l));
  const std::string big(100, 'x');
  ASSERT_EQ(sb_put(l, "a", 1, big.data(), big.size()), SB_OK);
  ASSERT_EQ(sb_put(l, "b", 1, "bee", 3), SB_OK);
  ASSERT_EQ(sb_put(l, "empty", 5, nullptr, 0), SB_OK);
  EXPECT_EQ(sb_put(l, "c", 1, "x", 1), SB_INVALID_ARGUMENT) << "c is not covered";
  EXPECT_EQ(sb_put(l, "a", 1, big.data(), sb_max_value_bytes(c_) + 1), SB_TOO_LARGE);
  // The buffer-too-small path: the size comes back, nothing is copied.
  char small[8];
  std::memset(small, '-', sizeof small);
  size_t len = 0;
  int found = 0;
  ASSERT_EQ(sb_get(l, "a", 1, small, sizeof small, &len, &found), SB_OK);
  EXPECT_EQ(found, 1);
  EXPECT_EQ(len, big.size());
  EXPECT_EQ(text(small, sizeof small), "--------");
  std::vector<char> buf(len);
  ASSERT_EQ(sb_get(l, "a", 1, buf.data(), buf.size(), &len, &found), SB_OK);
  EXPECT_EQ(text(buf.data(), len), big);
  ASSERT_EQ(sb_get(l, "b", 1, nullptr, 0, &len, &found), SB_OK);
  EXPECT_EQ(len, 3u);
  // The allocator path: memory the caller owns, not called for a missing attribute.
  struct Arena { std::vector<std::unique_ptr<char[]>> blocks; std::vector<size_t> sizes; } arena;
  auto arena_alloc = [](void* ctx, size_t n) -> void* {
    auto* a = static_cast<Arena*>(ctx);
    a->sizes.push_back(n);
    return a->blocks.emplace_back(new char[n + 1]).get();
  };
  void* out = nullptr;
  ASSERT_EQ(sb_get_alloc(l, "b", 1, arena_alloc, &arena, &out, &len, &found), SB_OK);
  EXPECT_EQ(found, 1);
  EXPECT_EQ(text(out, len), "bee");
  EXPECT_EQ(out, arena.blocks.back().get());
  ASSERT_EQ(sb_get_alloc(l, "empty", 5, arena_alloc, &arena, &out, &len, &found), SB_OK);
  EXPECT_EQ(found, 1);
  EXPECT_EQ(len, 0u);
  EXPECT_EQ(arena.sizes.back(), 0u);
  ASSERT_EQ(sb_erase(l, "b", 1), SB_OK);
  const size_t calls = arena.sizes.size();
  ASSERT_EQ(sb_get_alloc(l, "b", 1, arena_alloc, &arena, &out, &len, &found), SB_OK);
  EXPECT_EQ(found, 0);
  EXPECT_EQ(arena.sizes.size(), calls) << "alloc was called for a missing attribute";
  // An allocator that fails (NULL) or throws: SB_SYSTEM, and nothing crosses the boundary.
  auto null_alloc = [](void*, size_t) -> void* { return nullptr; };
  EXPECT_EQ(sb_get_alloc(l, "a", 1, null_alloc, nullptr, &out, &len, &found), SB_SYSTEM);
  auto throwing_alloc = [](void*, size_t) -> void* { throw std::runtime_error("arena exhausted"); };
  EXPECT_EQ(sb_get_alloc(l, "a", 1, throwing_alloc, nullptr, &out, &len, &found), SB_SYSTEM);
  EXPECT_NE(std::string(sb_last_error()).find("arena exhausted"), std::string::npos) << sb_last_error();
  // get_all: committed state plus this lock's writes, with early stop.
  std::map<std::string, std::string> all;
  auto collect = [](void* ctx, const char* n, size_t nl, const void* v, size_t vl) {
    (*static_cast<std::map<std::string, std::string>*>(ctx))[std::string(n, nl)] = text(v, vl);
    return 0;
  };
  ASSERT_EQ(sb_get_all(l, collect, &all), SB_OK);
  EXPECT_EQ(all, (std::map<std::string, std::string>{{"a", big}, {"empty", ""}}));
  int seen = 0;
  ASSERT_EQ(sb_get_all(l, [](void* ctx, const char*, size_t, const void*, size_t) { return ++*static_cast<int*>(ctx); }, &seen), SB_OK);
  EXPECT_EQ(seen, 1);
  ASSERT_EQ(sb_commit(l), SB_OK);
  ASSERT_EQ(sb_unlock(l), SB_OK);
  sb_lock* r = nullptr;
  ASSERT_EQ(sb_lock_all(s, SB_SHARED, 5000, &r), SB_OK);
  EXPECT_EQ(get(r, "a"), big);
  EXPECT_EQ(get(r, "b"), std::nullopt);
  EXPECT_EQ(sb_put(r, "a", 1, "x", 1), SB_INVALID_ARGUMENT) << "put needs an exclusive lock";
  sb_discard(r);
  sb_session_free(s);
}

TEST_F(CApiTest, BadLockRequestsAreRefused) {
  sb_session* s = open_or_create("s");
  const char* names[] = {"a", nullptr};
  const size_t lens[] = {1, 3};
  sb_lock* l = nullptr;
  EXPECT_EQ(sb_lock_attrs(s, names, lens, 0, SB_SHARED, 0, &l), SB_INVALID_ARGUMENT) << "no attributes";
  EXPECT_EQ(sb_lock_attrs(s, names, lens, 2, SB_SHARED, 0, &l), SB_INVALID_ARGUMENT) << "a NULL name";
  EXPECT_EQ(sb_lock_attrs(s, names, lens, 1, 7, 0, &l), SB_INVALID_ARGUMENT) << "no such mode";
  EXPECT_EQ(sb_lock_all(s, -1, 0, &l), SB_INVALID_ARGUMENT);
  std::vector<std::string> many(20);
  std::vector<const char*> ptrs;
  std::vector<size_t> many_lens;
  for (size_t i = 0; i < many.size(); ++i) {
    many[i] = "attr" + std::to_string(i);
    ptrs.push_back(many[i].data());
    many_lens.push_back(many[i].size());
  }
  ASSERT_EQ(sb_lock_attrs(s, ptrs.data(), many_lens.data(), ptrs.size(), SB_EXCLUSIVE, 5000, &l), SB_OK)
      << "more names than fit on the stack";
  EXPECT_EQ(sb_put(l, "attr19", 6, "v", 1), SB_OK);
  EXPECT_EQ(sb_unlock(l), SB_OK);
  sb_session_free(s);
}

// Each thread has its own last error: one thread's failure never shows as another's message.
TEST_F(CApiTest, LastErrorIsPerThread) {
  sb_session* s = open_or_create("s");
  sb_session* none = nullptr;
  ASSERT_EQ(sb_open(c_, "missing", 7, &none), SB_NOT_FOUND);
  const std::string mine = sb_last_error();
  EXPECT_NE(mine.find("not found"), std::string::npos) << mine;
  std::string other_before, other_after;
  std::thread t([&] {
    other_before = sb_last_error();
    sb_lock* l = nullptr;
    (void)sb_lock_all(s, 42, 0, &l);
    other_after = sb_last_error();
  });
  t.join();
  EXPECT_EQ(other_before, "") << "a new thread starts with no message";
  EXPECT_NE(other_after.find("invalid argument"), std::string::npos) << other_after;
  EXPECT_EQ(std::string(sb_last_error()), mine);
  sb_session_free(s);
}

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
  ASSERT_TRUE(store_->break_session_locks(*store_->open_session("s")));
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
