// Claims 5, 10, 18, 21, 26, 35: inside the holding process, threads lock portions of the session
// (attributes, or the whole session); while a thread holds a portion, other threads of the process
// cannot access it, and threads on other portions proceed. In-process threads only: this file is
// the one ThreadSanitizer runs.
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "claims/claim_fixture.hpp"
#include "check.hpp"
#include "local_session.hpp"

namespace sbtest {
namespace {

using sessionbroker::Status;

// A release() of a process lock that is no longer held (a revoke request had the revoke thread
// give it back, or another thread's release came first) says kNotHeld: fine in the races below.
void released_ok(const Status& st) { EXPECT_TRUE(st || st.code() == ErrorCode::kNotHeld) << st.to_string(); }

TEST_F(ShmClaimTest, Claim05_ThreadLockExcludesOtherThreadsFromItsAttributeOnly) {
  auto c = attach();
  auto s = c->create("s");
  auto a = s->lock({"a"}, Mode::kExclusive, in(5s));
  ASSERT_TRUE(a);
  std::thread t([&] {
    EXPECT_EQ(s->lock({"a"}, Mode::kShared, in(50ms)).code(), ErrorCode::kTimeout);
    auto b = s->lock({"b"}, Mode::kExclusive, in(5s));  // another portion: granted at once
    EXPECT_TRUE(b);
    EXPECT_EQ(b->token(), a->token()) << "one process lock serves every thread";
  });
  t.join();
}

TEST_F(ShmClaimTest, Claim05_BlockedThreadIsGrantedWhenThePortionIsUnlocked) {
  auto c = attach();
  auto s = c->create("s");
  auto a = s->lock({"a"}, Mode::kExclusive, in(5s));
  ASSERT_TRUE(a->put("a", "from thread 1"));
  std::atomic<bool> started{false};
  std::string seen;
  std::thread t([&] {
    started = true;
    auto l = s->lock({"a"}, Mode::kShared, in(10s));
    if (l) seen = l->get("a")->value_or("");
  });
  ASSERT_TRUE(eventually([&] { return started.load(); }));
  ASSERT_TRUE(a->unlock());
  t.join();
  EXPECT_EQ(seen, "from thread 1");
}

// Two threads of one process hold locks on two attributes under one process grant and commit in
// turn; the first read its attribute before the second committed. Neither commit may lose the
// other's (the first one's read copy is out of date by then: backend.hpp ReadCopy).
TEST_F(ShmClaimTest, Claim05_CommitsOfTwoThreadsOnTwoAttributesBothSurvive) {
  auto c = attach();
  auto s = c->create("s");
  for (int round = 0; round < 20; ++round) {
    auto a = s->lock({"a"}, Mode::kExclusive, in(5s));
    ASSERT_TRUE(a);
    ASSERT_TRUE(a->get("a"));  // thread 1 reads ...
    std::thread t([&] {        // ... thread 2 writes another attribute and commits ...
      auto b = s->lock({"b"}, Mode::kExclusive, in(5s));
      ASSERT_TRUE(b);
      ASSERT_TRUE(b->put("b", std::to_string(round)));
      ASSERT_TRUE(b->unlock());
    });
    t.join();
    ASSERT_TRUE(a->put("a", std::to_string(round)));  // ... and thread 1 commits after it
    ASSERT_TRUE(a->unlock());
    auto all = s->lock_all(Mode::kShared, in(5s));
    ASSERT_TRUE(all);
    auto got = all->get_all();
    ASSERT_TRUE(got);
    EXPECT_EQ(*got, (std::map<std::string, std::string>{{"a", std::to_string(round)}, {"b", std::to_string(round)}}))
        << "round " << round;
  }
}

TEST_F(ShmClaimTest, Claim05_WholeSessionLockExcludesAttributeLocks) {
  auto c = attach();
  auto s = c->create("s");
  {
    auto whole = s->lock_all(Mode::kExclusive, in(5s));
    ASSERT_TRUE(whole);
    std::thread t([&] { EXPECT_EQ(s->lock({"x"}, Mode::kShared, in(50ms)).code(), ErrorCode::kTimeout); });
    t.join();
  }
  auto attr = s->lock({"x"}, Mode::kShared, in(5s));
  ASSERT_TRUE(attr);
  std::thread t([&] {
    EXPECT_EQ(s->lock_all(Mode::kExclusive, in(50ms)).code(), ErrorCode::kTimeout);
    EXPECT_TRUE(s->lock_all(Mode::kShared, in(50ms))) << "shared whole-session reads coexist with shared attribute locks";
  });
  t.join();
}

// Two threads take {a, b} and {b, a} over and over: the set is granted all at once, so no
// interleaving can deadlock. A deadlock would show as a timeout.
TEST_F(ShmClaimTest, Claim05_MultiAttributeLocksDoNotDeadlock) {
  auto c = attach();
  auto s = c->create("s");
  std::atomic<int> failures{0};
  auto run = [&](std::vector<std::string> order) {
    for (int i = 0; i < 2000; ++i) {
      auto l = s->lock(order, Mode::kExclusive, in(5s));
      if (!l) failures++;
    }
  };
  std::thread t1(run, std::vector<std::string>{"a", "b"});
  std::thread t2(run, std::vector<std::string>{"b", "a"});
  t1.join();
  t2.join();
  EXPECT_EQ(failures.load(), 0);
}

// Threads of one process increment per-thread counters and one shared counter; the exclusive
// attribute lock must make the shared counter exact.
TEST_F(ShmClaimTest, Claim05_ThreadsIncrementWithoutLostUpdates) {
  auto c = attach();
  auto s = c->create("s");
  constexpr int kThreads = 4, kIncrements = 300;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIncrements; ++i) {
        auto l = s->lock({"n"}, Mode::kExclusive, in(10s));
        ASSERT_TRUE(l);
        auto v = l->get("n");
        ASSERT_TRUE(v);
        ASSERT_TRUE(l->put("n", std::to_string((v->has_value() ? std::stoi(**v) : 0) + 1)));
      }
    });
  }
  for (auto& t : threads) t.join();
  auto l = s->lock({"n"}, Mode::kShared, in(5s));
  EXPECT_EQ(l->get("n")->value_or(""), std::to_string(kThreads * kIncrements));
}

// Clients of one process take turns on a session, mostly on the segment's fast path
// (fast_owner.hpp): three take it exclusively and give it back (release) in a loop while a fourth
// takes it shared, through the session mutex, which absorbs the fast word and queues. `plain` is
// guarded only by the session's locks: a lapse in exclusion is a lost update. (Each client maps the
// segment at its own address, so ThreadSanitizer cannot follow their handoffs; the test below runs
// the same race on one mapping for it.)
TEST_F(ShmClaimTest, ClientsOfOneProcessTakeTurnsWithoutLostUpdates) {
  auto creator = attach();
  ASSERT_TRUE(creator->create("s"));
  constexpr int kWriters = 3, kRounds = 300;
  int plain = 0;
  std::atomic<bool> writers_done{false};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&] {
      auto c = attach();
      auto s = c->open("s");
      ASSERT_TRUE(s);
      for (int i = 0; i < kRounds; ++i) {
        auto l = s->lock({"n"}, Mode::kExclusive, in(10s));
        ASSERT_TRUE(l) << l.status().to_string();
        auto v = l->get("n");
        ASSERT_TRUE(v);
        ++plain;
        ASSERT_TRUE(l->put("n", std::to_string((v->has_value() ? std::stoi(**v) : 0) + 1)));
        ASSERT_TRUE(l->unlock());
        released_ok(s->release(in(10s)));
      }
    });
  }
  threads.emplace_back([&] {
    auto c = attach();
    auto s = c->open("s");
    ASSERT_TRUE(s);
    int seen = 0;
    while (!writers_done.load()) {
      auto l = s->lock_all(Mode::kShared, in(10s));
      ASSERT_TRUE(l) << l.status().to_string();
      seen = plain;  // read under the shared lock: no writer is inside
      ASSERT_TRUE(l->unlock());
      released_ok(s->release(in(10s)));
    }
    EXPECT_LE(seen, kWriters * kRounds);
  });
  for (int w = 0; w < kWriters; ++w) threads[static_cast<std::size_t>(w)].join();
  writers_done = true;
  threads.back().join();
  EXPECT_EQ(plain, kWriters * kRounds);
  auto l = creator->open("s")->lock({"n"}, Mode::kShared, in(5s));
  ASSERT_TRUE(l);
  EXPECT_EQ(l->get("n")->value_or(""), std::to_string(kWriters * kRounds));
}

// The same race on the lock table itself, every thread a client of its own on the one mapping of
// the test's segment, so that ThreadSanitizer sees every word the fast path and the mutex path
// synchronise through: a missing acquire or release order on the fast word or a record's state is
// a data race on `plain` here.
TEST_F(ShmClaimTest, FastPathRacesTheMutexPathOnOneMapping) {
  using sessionbroker::detail::RecordGrant;
  using sessionbroker::shm::LockMode;
  auto ref = registry_->create_session("s", 0);
  ASSERT_TRUE(ref);
  constexpr int kWriters = 3, kRounds = 400;
  int plain = 0;
  std::atomic<int> writers_left{kWriters};
  auto run = [&](LockMode mode) {
    auto client = registry_->attach_client(getpid());
    ASSERT_TRUE(client);
    const std::uint32_t rec = seg_->first_record_of(*client);
    for (int i = 0; mode == LockMode::kExclusive ? i < kRounds : writers_left.load() > 0; ++i) {
      auto g = locks_->acquire(*client, rec, *ref, mode, sessionbroker::shm::Clock::now() + 10s);
      ASSERT_TRUE(g) << g.status().to_string();
      if (mode == LockMode::kExclusive) ++plain;
      else EXPECT_LE(plain, kWriters * kRounds);
      ASSERT_TRUE(locks_->release(*ref, *g));
    }
    if (mode == LockMode::kExclusive) --writers_left;
  };
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) threads.emplace_back(run, LockMode::kExclusive);
  threads.emplace_back(run, LockMode::kShared);
  for (auto& t : threads) t.join();
  EXPECT_EQ(plain, kWriters * kRounds);
  auto report = sessionbroker::detail::check_segment(*seg_);
  EXPECT_TRUE(report.ok()) << (report.violations.empty() ? "" : report.violations[0].detail);
}

// The cached process lock lets one thread at a time lock without the session mutex (the fast
// lane); every other thread goes through the mutex, which first counts the lane's holder in. This
// mixes both paths on overlapping portions (attribute "a", attribute "b", the whole session) while
// another thread keeps giving the process lock back, so the lane is opened, taken, absorbed and
// closed in every order. The counters are plain ints guarded only by the thread locks: a lapse in
// exclusion is a lost increment here and a data race under ThreadSanitizer.
TEST_F(ShmClaimTest, Claim05_FastLaneAndMutexPathExcludeEachOther) {
  auto c = attach();
  auto s = c->create("s");
  constexpr int kRounds = 400;
  int a = 0, b = 0;
  std::atomic<bool> done{false};
  auto repeat = [&](auto body) {
    return std::thread([&, body] {
      for (int i = 0; i < kRounds; ++i) body();
    });
  };
  std::vector<std::thread> threads;
  threads.push_back(repeat([&] {
    auto l = s->lock({"a"}, Mode::kExclusive, in(10s));
    ASSERT_TRUE(l) << l.status().to_string();
    ++a;
  }));
  threads.push_back(repeat([&] {
    auto l = s->lock({"b"}, Mode::kExclusive, in(10s));
    ASSERT_TRUE(l) << l.status().to_string();
    ++b;
  }));
  threads.push_back(repeat([&] {
    auto l = s->lock_all(Mode::kExclusive, in(10s));
    ASSERT_TRUE(l) << l.status().to_string();
    ++a;
    ++b;
  }));
  threads.push_back(repeat([&] {
    auto l = s->lock({"a", "b"}, Mode::kShared, in(10s));
    ASSERT_TRUE(l) << l.status().to_string();
    EXPECT_GE(a + b, 0);  // a read under the shared lock: a race here if a writer overlapped
  }));
  std::thread releaser([&] {
    while (!done.load()) (void)s->release(in(10s));  // kNotHeld when nobody holds: fine
  });
  for (auto& t : threads) t.join();
  done = true;
  releaser.join();
  EXPECT_EQ(a, 2 * kRounds);
  EXPECT_EQ(b, 2 * kRounds);
}

// The lane's full cycle: on an idle session a lock claims the lane from kVacant and acquires the
// process lock itself, and release() on an open lane gives it back, neither through the session's
// mutex (local_session.hpp). Here threads of one client race full cycles (lock, unlock, release)
// against a reader that takes the whole session shared, a thread that tries, and one that asks
// token() and held(), which read the process lock's state under the mutex while the lane's
// claims and releases change it. `plain` is guarded only by the locks: a lapse in exclusion is a
// lost increment, and a data race under ThreadSanitizer.
TEST_F(ShmClaimTest, Claim05_FullCyclesThroughTheLaneRaceTheMutexPath) {
  auto c = attach();
  auto s = c->create("s");
  constexpr int kWriters = 3, kRounds = 400;
  int plain = 0;
  std::atomic<int> writers_left{kWriters};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&] {
      for (int i = 0; i < kRounds; ++i) {
        auto l = s->lock({"n"}, Mode::kExclusive, in(10s));
        ASSERT_TRUE(l) << l.status().to_string();
        ++plain;
        ASSERT_TRUE(l->unlock());
        released_ok(s->release(in(10s)));
      }
      --writers_left;
    });
  }
  threads.emplace_back([&] {
    while (writers_left.load() > 0) {
      auto l = s->lock_all(Mode::kShared, in(10s));
      ASSERT_TRUE(l) << l.status().to_string();
      EXPECT_LE(plain, kWriters * kRounds);  // a read under the shared lock
      ASSERT_TRUE(l->unlock());
      released_ok(s->release(in(10s)));
    }
  });
  threads.emplace_back([&] {
    while (writers_left.load() > 0) {
      auto l = s->try_lock({"n"}, Mode::kExclusive);
      if (!l) {
        EXPECT_EQ(l.code(), ErrorCode::kBusy) << l.status().to_string();
        continue;
      }
      ++plain;
      --plain;
    }
  });
  threads.emplace_back([&] {
    std::uint64_t last = 0;
    while (writers_left.load() > 0) {
      const std::uint64_t token = s->token();
      EXPECT_TRUE(token == 0 || token >= last) << "tokens go back: " << token << " after " << last;
      if (token != 0) last = token;
      (void)s->held();
    }
  });
  for (auto& t : threads) t.join();
  EXPECT_EQ(plain, kWriters * kRounds);
  released_ok(s->release(in(10s)));
  EXPECT_FALSE(s->held());
  EXPECT_EQ(s->token(), 0u);
  auto report = sessionbroker::detail::check_segment(*seg_);
  EXPECT_TRUE(report.ok()) << (report.violations.empty() ? "" : report.violations[0].detail);
}

// The lane's claim from kVacant on a session another client holds: the try finds it busy, the
// request queues and is granted when the holder gives it back; a try-lock says
// kBusy; after the session was destroyed by the other client the claim's failure is reported as
// lock() reports it without the lane.
TEST_F(ShmClaimTest, LaneClaimOnABusySessionQueuesAndOnADestroyedOneFails) {
  auto c = attach();
  auto other = attach();
  auto s = c->create("s");
  ASSERT_TRUE(s->lock({"n"}, Mode::kExclusive, in(5s))->unlock());
  ASSERT_TRUE(s->release(in(5s)));  // the lane is kVacant now
  std::mutex mu;
  std::condition_variable cv;
  bool asked = false;
  other->on_revoke([&](const sessionbroker::RevokeEvent& e) {
    if (e.kind != sessionbroker::RevokeEvent::Kind::kRequested) return;
    std::lock_guard lk(mu);
    asked = true;
    cv.notify_all();
  });
  auto theirs = other->open("s");
  auto held = theirs->lock({"n"}, Mode::kExclusive, in(5s));
  ASSERT_TRUE(held);
  const std::uint64_t their_token = held->token();
  EXPECT_EQ(s->try_lock({"n"}, Mode::kExclusive).code(), ErrorCode::kBusy);
  std::thread giver([&] {  // unlocks once the queued request has asked for the lock
    std::unique_lock lk(mu);
    const bool was_asked = cv.wait_for(lk, 10s, [&] { return asked; });
    lk.unlock();
    EXPECT_TRUE(was_asked) << "the waiting lock never asked the holder";
    ASSERT_TRUE(held->unlock());  // asked back: the unlock gives it back
  });
  auto mine = s->lock({"n"}, Mode::kExclusive, in(20s));
  giver.join();
  ASSERT_TRUE(mine) << mine.status().to_string();
  EXPECT_GT(mine->token(), their_token);
  ASSERT_TRUE(mine->unlock());
  ASSERT_TRUE(s->release(in(5s)));
  ASSERT_TRUE(other->destroy("s", in(5s)));
  EXPECT_EQ(s->lock({"n"}, Mode::kExclusive, in(1s)).code(), ErrorCode::kNotFound);
  EXPECT_EQ(s->try_lock({"n"}, Mode::kExclusive).code(), ErrorCode::kNotFound);
}

// A thread that needs exclusive access while the process holds only a shared lock: the process
// lock is upgraded (released and re-acquired exclusive) once the readers are done.
TEST_F(ShmClaimTest, SharedProcessLockIsUpgradedForAWriter) {
  auto c = attach();
  auto s = c->create("s");
  std::uint64_t shared_token;
  {
    auto r = s->lock({"a"}, Mode::kShared, in(5s));
    ASSERT_TRUE(r);
    shared_token = r->token();
  }
  auto w = s->lock({"a"}, Mode::kExclusive, in(5s));
  ASSERT_TRUE(w) << w.status().to_string();
  EXPECT_GT(w->token(), shared_token);
  EXPECT_EQ(snap("s")->mode, Mode::kExclusive);
}

TEST_F(ShmClaimTest, UncommittedWritesAreSeenByTheirThreadOnly) {
  auto c = attach();
  auto s = c->create("s");
  auto w = s->lock({"a"}, Mode::kExclusive, in(5s));
  ASSERT_TRUE(w->put("a", "draft"));
  EXPECT_EQ(w->get("a")->value_or(""), "draft");
  ASSERT_TRUE(w->erase("a"));
  EXPECT_FALSE(w->get("a")->has_value());
  ASSERT_TRUE(w->put("a", "final"));
  ASSERT_TRUE(w->commit());
  auto all = w->get_all();
  ASSERT_TRUE(all);
  EXPECT_EQ(all->at("a"), "final");
}

// Finding 4 of issue 12. A thread in the slow path lets go of the session's mutex to tell the
// revoke callback that the process lock was lost; meanwhile a second thread gives the lost lock
// back, takes a new one and unlocks (which opens the fast lane), and a third thread takes "a"
// through the lane. When the first thread takes the mutex again it must see the lane's holder:
// before the fix it granted "a" a second time, exclusively, without closing the lane.
// The revoke thread is kept out of the way, blocked on another session's segment mutex (held by
// the test) while it gives that session ("z") back, so that the first thread is the one that
// notices the loss of "s" and runs the callback.
TEST_F(ShmClaimTest, Claim05_LaneStaysClosedWhileASlowPathHasLetGoOfItsMutex) {
  auto c = attach();
  auto q = attach();
  auto s = c->create("s");
  auto z = c->create("z");
  pthread_mutex_t& z_mutex = seg_->session(registry_->open_session("z")->slot).mutex.native;
  std::mutex mu;
  std::condition_variable cv;
  bool z_asked = false, z_blocked = false, s_lost = false, go = false;
  c->on_revoke([&](const sessionbroker::RevokeEvent& e) {
    std::unique_lock lk(mu);
    if (e.kind == sessionbroker::RevokeEvent::Kind::kRequested && e.session_id == "z") {
      z_asked = true;  // the revoke thread goes on to release z once the test holds z's mutex
      cv.notify_all();
      cv.wait(lk, [&] { return z_blocked; });
    } else if (e.kind == sessionbroker::RevokeEvent::Kind::kLost && e.session_id == "s") {
      s_lost = true;
      cv.notify_all();
      cv.wait(lk, [&] { return go; });
    }
  });
  auto set = [&](bool& flag) {
    std::lock_guard lk(mu);
    flag = true;
    cv.notify_all();
  };
  auto arrived = [&](bool& flag) {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, 10s, [&] { return flag; });
  };
  ASSERT_TRUE(z->lock({"a"}, Mode::kExclusive, in(5s))->unlock());
  ASSERT_TRUE(s->lock({"a"}, Mode::kExclusive, in(5s))->unlock());  // cached: the lane is open

  std::thread qz([&] { (void)q->open("z")->lock({"a"}, Mode::kExclusive, in(20s)); });
  ASSERT_TRUE(arrived(z_asked));
  ASSERT_EQ(pthread_mutex_lock(&z_mutex), 0);
  set(z_blocked);
  auto ref = registry_->open_session("s");
  ASSERT_TRUE(ref && admin_->break_session_locks(*ref));  // as `sessionctl break-lock s`
  ErrorCode first = ErrorCode::kOk;
  std::thread t1([&] { first = s->lock({"a"}, Mode::kExclusive, in(300ms)).code(); });
  ASSERT_TRUE(arrived(s_lost)) << "the first thread tells the callback, without the session's mutex";
  std::thread([&] {
    auto l = s->lock({"a"}, Mode::kExclusive, in(5s));  // gives the lost lock back, takes a new one
    ASSERT_TRUE(l) << l.status().to_string();
    ASSERT_TRUE(l->unlock());  // the lane opens
  }).join();
  auto third = s->lock({"a"}, Mode::kExclusive, in(5s));  // through the lane
  ASSERT_TRUE(third);
  set(go);
  t1.join();
  EXPECT_EQ(first, ErrorCode::kTimeout) << "\"a\" was granted to two threads at once";
  ASSERT_TRUE(third->unlock());
  pthread_mutex_unlock(&z_mutex);
  qz.join();
}

// Finding 4, the release() variant: two threads call release() while a third holds a thread lock;
// one times out. It used to clear the other's request (one flag for both) and reopen the lane, so
// the remaining release() waited for nothing and a lane lock could start under it.
TEST_F(ShmClaimTest, Claim05_ATimedOutReleaseLeavesTheOtherReleaseWaiting) {
  auto c = attach();
  auto s = c->create("s");
  auto held = s->lock({"a"}, Mode::kExclusive, in(5s));
  ASSERT_TRUE(held);
  std::atomic<bool> patient_done{false};
  Status patient_result(ErrorCode::kInvalidArgument, "not run");
  std::thread patient([&] {
    patient_result = s->release(in(20s));
    patient_done = true;
  });
  EXPECT_EQ(s->release(in(100ms)).code(), ErrorCode::kTimeout);
  // The patient release still stands: a new thread lock must not be granted on the process lock
  // it is giving back, by the lane or otherwise.
  EXPECT_EQ(s->lock({"b"}, Mode::kExclusive, in(100ms)).code(), ErrorCode::kTimeout);
  EXPECT_FALSE(patient_done.load());
  ASSERT_TRUE(held->unlock());
  patient.join();
  EXPECT_TRUE(patient_result) << patient_result.to_string();
  EXPECT_FALSE(s->held());
}

}  // namespace
}  // namespace sbtest

// A shared lock never commits, so its reads keep no copy of the session (backend.hpp ReadCopy): the
// backend gets no slot for them; an exclusive lock's reads and commits get the lock's own.
TEST(ThreadLockStateTest, OnlyAnExclusiveLockHandsTheBackendACopySlot) {
  sessionbroker::detail::ThreadLockState t;
  t.mode = sessionbroker::Mode::kShared;
  EXPECT_EQ(t.copy_slot(), nullptr);
  t.mode = sessionbroker::Mode::kExclusive;
  EXPECT_EQ(t.copy_slot(), &t.copy);
}
