// The C API (sessionbroker.h) called as a C program would, inside one process: result codes and
// names, NULL arguments, sessions, values into the caller's buffer or allocator (including the
// buffer-too-small path and allocators that fail or throw), bad lock requests, the per-thread last
// error. c_api_process_test.cpp covers what involves other processes.
#include <cstdlib>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "c_api_fixture.hpp"

namespace sbtest {
namespace {

TEST_F(CApiTest, CodesHaveTheErrorCodeNames) {
  EXPECT_STREQ(sb_code_name(SB_OK), "ok");
  EXPECT_STREQ(sb_code_name(SB_STALE_TOKEN), "stale token");
  EXPECT_STREQ(sb_code_name(SB_BUSY), "busy");
  EXPECT_STREQ(sb_code_name(SB_UNAVAILABLE), "store unavailable");
  EXPECT_STREQ(sb_code_name(SB_UNAVAILABLE + 1), "unknown");
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

// Who holds a session: this process's pid while it holds the process lock (cached after the
// thread unlock too), nobody after it gave it back; a short buffer still gets the count; a
// destroyed session is SB_NOT_FOUND. A child holder's pid: TryLockIsBusyAndLeavesNoTrace.
TEST_F(CApiTest, HoldersNameTheHoldingProcesses) {
  sb_session* s = open_or_create("s");
  int32_t pids[4] = {0, 0, 0, 0};
  size_t n = 99;
  ASSERT_EQ(sb_session_holders(s, pids, 4, &n), SB_OK) << sb_last_error();
  EXPECT_EQ(n, 0u) << "nobody holds a new session";
  sb_lock* l = lock1(s, "a", SB_EXCLUSIVE);
  sb_unlock(l);
  ASSERT_EQ(sb_session_holders(s, pids, 4, &n), SB_OK);
  ASSERT_EQ(n, 1u) << "the process lock stays cached after the thread unlock";
  EXPECT_EQ(pids[0], static_cast<int32_t>(getpid()));
  ASSERT_EQ(sb_session_holders(s, nullptr, 0, &n), SB_OK);
  EXPECT_EQ(n, 1u) << "no buffer: the count alone";
  EXPECT_EQ(sb_session_holders(s, nullptr, 1, &n), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_session_holders(nullptr, pids, 4, &n), SB_INVALID_ARGUMENT);
  EXPECT_EQ(sb_session_holders(s, pids, 4, nullptr), SB_INVALID_ARGUMENT);
  ASSERT_EQ(sb_session_release(s, 5000), SB_OK) << sb_last_error();
  ASSERT_EQ(sb_session_holders(s, pids, 4, &n), SB_OK);
  EXPECT_EQ(n, 0u) << "released";
  ASSERT_EQ(sb_destroy(c_, "s", 1, 5000), SB_OK);
  EXPECT_EQ(sb_session_holders(s, pids, 4, &n), SB_NOT_FOUND);
  sb_session_free(s);
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

}  // namespace
}  // namespace sbtest
