// Claims 3, 10, 22, 26, 32, 35: the store asks the holder to release; the holder releases in
// response, once its threads are done. And fencing: a lock taken away makes the token stale.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <unistd.h>

#include "claim_fixture.hpp"

namespace sbtest {
namespace {

using sessionbroker::RevokeEvent;

const char* kind_name(const RevokeEvent& e) {
  switch (e.kind) {
    case RevokeEvent::Kind::kRequested: return "requested";
    case RevokeEvent::Kind::kReleased: return "released";
    default: return "lost";
  }
}

// A cached, idle lock is given back as soon as another process queues: the holder is told through
// its callback (kRequested, then kReleased) and the waiter is granted.
TEST_P(ClaimTest, Claim03_RevokeRequestReleasesCachedLock) {
  auto holder = Child::spawn([&](Channel& ch) {
    auto cc = Client::attach(name_);
    (*cc)->on_revoke([&](const RevokeEvent& e) {
      ch.send(kind_name(e));
    });
    auto s = (*cc)->create("s");
    { auto l = s->lock_all(Mode::kExclusive, in(5s)); if (!l) return 10; }
    ch.send("cached");
    ch.receive(20s);  // stay alive until the test ends
    return 0;
  });
  ASSERT_EQ(holder.channel().receive(), "cached");
  auto c = attach();
  auto l = c->open("s")->lock_all(Mode::kExclusive, in(10s));
  ASSERT_TRUE(l) << l.status().to_string();
  EXPECT_EQ(holder.channel().receive(), "requested");
  EXPECT_EQ(holder.channel().receive(), "released");
  holder.channel().send("done");
  EXPECT_EQ(holder.wait(), 0);
}

// The revoke request follows the modes: a shared request asks a cached exclusive lock back, and
// leaves a cached shared lock alone (it is granted beside it). On etcd both holders' watches see
// the shared key queued behind their grant; only the exclusive grant conflicts with it.
TEST_P(ClaimTest, Claim03_ASharedRequestAsksBackAnExclusiveLockButNotASharedOne) {
  for (const Mode held : {Mode::kExclusive, Mode::kShared}) {
    SCOPED_TRACE(held == Mode::kExclusive ? "exclusive holder" : "shared holder");
    const std::string id = held == Mode::kExclusive ? "x" : "s";
    auto holder = Child::spawn([&](Channel& ch) {
      auto cc = Client::attach(name_);
      (*cc)->on_revoke([&](const RevokeEvent& e) { ch.send(kind_name(e)); });
      auto s = (*cc)->create(id);
      { auto l = s->lock_all(held, in(5s)); if (!l) return 10; }
      ch.send("cached");
      ch.receive(20s);  // stay alive until the test ends
      return 0;
    });
    ASSERT_EQ(holder.channel().receive(), "cached");
    auto c = attach();
    auto l = c->open(id)->lock_all(Mode::kShared, in(10s));
    ASSERT_TRUE(l) << l.status().to_string();
    if (held == Mode::kExclusive) {
      EXPECT_EQ(holder.channel().receive(), "requested");
      EXPECT_EQ(holder.channel().receive(), "released");
    } else {
      auto told = holder.channel().receive(300ms);
      EXPECT_FALSE(told) << "a cached shared lock was asked back by a shared request: " << *told;
      EXPECT_EQ(holder_count(id), 2u);
    }
    holder.channel().send("done");
    EXPECT_EQ(holder.wait(), 0);
  }
}

// A waiter granted while another request is already queued behind it is asked back at once: it
// uses the grant, caches it, and gives it back to the next in line without any further event (on
// etcd the request behind it was in the view before the grant; nothing new arrives afterwards).
TEST_P(ClaimTest, Claim03_AGrantWithARequestQueuedBehindIsAskedBack) {
  auto c = attach();
  auto s = c->create("s");
  auto held = s->lock_all(Mode::kExclusive, in(5s));
  ASSERT_TRUE(held);
  auto first = Child::spawn([&](Channel& ch) {
    auto cc = Client::attach(name_);
    (*cc)->on_revoke([&](const RevokeEvent& e) {
      ch.send(kind_name(e));
    });
    { auto l = (*cc)->open("s")->lock_all(Mode::kExclusive, in(20s)); if (!l) return 10; }
    ch.send("cached");
    ch.receive(30s);  // stay alive, the lock cached, until the test ends
    return 0;
  });
  ASSERT_TRUE(eventually([&] { return queue_len("s") == 1; }));
  auto second = Child::spawn([&](Channel& ch) {
    auto cc = Client::attach(name_);
    auto l = (*cc)->open("s")->lock_all(Mode::kExclusive, in(10s));
    ch.send(l ? "granted" : l.status().to_string());
    return 0;
  });
  ASSERT_TRUE(eventually([&] { return queue_len("s") == 2; }));
  ASSERT_TRUE(held->unlock());  // asked back already: the cached lock goes to the first child
  // The order of the first child's lines depends on when its revoke thread looks; all three come.
  std::vector<std::string> lines;
  for (int i = 0; i < 3; ++i) {
    auto line = first.channel().receive(15s);
    ASSERT_TRUE(line) << "the first waiter said only " << ::testing::PrintToString(lines);
    lines.push_back(*line);
  }
  std::sort(lines.begin(), lines.end());
  EXPECT_EQ(lines, (std::vector<std::string>{"cached", "released", "requested"}));
  EXPECT_EQ(second.channel().receive(15s), "granted");
  first.channel().send("done");
  EXPECT_EQ(first.wait(), 0);
  EXPECT_EQ(second.wait(), 0);
}

// While a thread of the holding process still holds a thread lock, the revoke request is noted but
// the process keeps the lock; it releases the moment that thread unlocks, committing its writes first.
TEST_P(ClaimTest, Claim03_HolderReleasesOnceItsThreadsAreDone) {
  auto c = attach();
  std::mutex m;
  std::condition_variable cv;
  bool requested = false;
  c->on_revoke([&](const RevokeEvent& e) {
    if (e.kind != RevokeEvent::Kind::kRequested) return;
    std::lock_guard lk(m);
    requested = true;
    cv.notify_all();
  });
  auto s = c->create("s");
  auto busy = s->lock({"cart"}, Mode::kExclusive, in(5s));
  ASSERT_TRUE(busy);
  auto waiter = Child::spawn([&](Channel& ch) {
    auto cc = Client::attach(name_);
    auto l = (*cc)->open("s")->lock({"cart"}, Mode::kShared, in(20s));
    if (!l) return 10;
    ch.send("granted " + l->get("cart")->value_or("<absent>"));
    return 0;
  });
  {
    std::unique_lock lk(m);
    ASSERT_TRUE(cv.wait_for(lk, 10s, [&] { return requested; }));
  }
  EXPECT_TRUE(held_by("s", getpid())) << "released while a thread still held its lock";
  EXPECT_FALSE(waiter.channel().receive(100ms));
  ASSERT_TRUE(busy->put("cart", "written before release"));
  ASSERT_TRUE(busy->unlock());
  EXPECT_EQ(waiter.channel().receive(), "granted written before release");
  EXPECT_EQ(waiter.wait(), 0);
}

// While a revoke request is pending, new thread locks in the holding process do not extend the
// cached lock (that would starve the waiter); they queue behind the other process instead.
TEST_P(ClaimTest, Claim03_PendingRevokeStopsNewThreadLocksOnTheCachedLock) {
  auto c = attach();
  auto s = c->create("s");
  auto busy = s->lock({"a"}, Mode::kExclusive, in(5s));
  ASSERT_TRUE(busy);
  auto waiter = Child::spawn([&](Channel& ch) {
    auto cc = Client::attach(name_);
    auto l = (*cc)->open("s")->lock({"a"}, Mode::kExclusive, in(20s));
    if (!l) return 10;
    ch.send("granted");
    ch.receive(20s);
    return 0;
  });
  ASSERT_TRUE(eventually([&] { return queue_len("s") == 1; }));
  ASSERT_TRUE(eventually([&] { return snap("s")->holders.at(0).revoke; }));
  // Our revoke thread marks the request asynchronously; once it has, "b" must not be granted.
  ASSERT_TRUE(eventually([&] { return s->lock({"b"}, Mode::kExclusive, in(1ms)).code() == ErrorCode::kTimeout; }));
  ASSERT_TRUE(busy->unlock());
  EXPECT_EQ(waiter.channel().receive(), "granted");
  waiter.channel().send("done");
  auto b = s->lock({"b"}, Mode::kExclusive, in(10s));
  EXPECT_TRUE(b) << b.status().to_string();
  EXPECT_EQ(waiter.wait(), 0);
}

// Fencing (I2): once a lock is taken away by force, its token is stale. Reads and
// commits under it fail with kStaleToken and return no data; the holder's callback hears kLost.
TEST_P(ClaimTest, StaleTokenGetsErrorAndNeverData) {
  auto c = attach();
  std::atomic<int> lost{0};
  c->on_revoke([&](const RevokeEvent& e) {
    if (e.kind == RevokeEvent::Kind::kLost) lost++;
  });
  auto s = c->create("s");
  {
    auto l = s->lock({"secret"}, Mode::kExclusive, in(5s));
    ASSERT_TRUE(l->put("secret", "v1"));
  }
  auto l = s->lock({"secret"}, Mode::kExclusive, in(5s));
  ASSERT_TRUE(l);
  auto snapshot = snap("s");
  ASSERT_EQ(snapshot->holders.size(), 1u);
  // An operator breaks the lock (sessionctl break-lock does the same).
  const std::uint64_t stale_token = l->token();
  ASSERT_TRUE(break_lock("s", stale_token));
  auto v = l->get("secret");
  EXPECT_EQ(v.code(), ErrorCode::kStaleToken);
  ASSERT_TRUE(l->put("secret", "v2"));  // buffered locally: the fence is at commit
  EXPECT_EQ(l->commit().code(), ErrorCode::kStaleToken);
  EXPECT_TRUE(eventually([&] { return lost.load() == 1; }));
  (void)l->unlock();
  auto fresh = s->lock({"secret"}, Mode::kShared, in(5s));
  ASSERT_TRUE(fresh) << fresh.status().to_string();
  EXPECT_GT(fresh->token(), stale_token);
  EXPECT_EQ(fresh->get("secret")->value_or(""), "v1") << "a stale holder's write became visible";
}

}  // namespace
}  // namespace sbtest
