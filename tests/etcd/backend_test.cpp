// The etcd backend under failures, with real processes on a real 3-member cluster (docs/etcd.md):
// the leader killed during a lock storm, a holder killed (lease expiry, and the local broker), a
// client cut off from the cluster, a member restarted, and the known etcd lock pitfalls. The
// claim tests (tests/claims/) run the ordinary behaviour on this backend too.
//
// A forked child never inherits gRPC state in use: children attach on their own, and the test
// process reads the store only after its children exist, through a client of its own.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <fstream>
#include <cstdio>
#include <map>
#include <mutex>
#include <condition_variable>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "broker_child.hpp"
#include "etcd/etcd_backend.hpp"
#include "etcd_cluster.hpp"
#include "eventually.hpp"
#include "process.hpp"
#include "sessionbroker/client.hpp"
#include "test_point.hpp"

namespace sbtest {
namespace {

using namespace std::chrono_literals;
using sessionbroker::Client;
using sessionbroker::ErrorCode;
using sessionbroker::Mode;
using sessionbroker::RevokeEvent;
using sessionbroker::in;
namespace etcd = sessionbroker::detail::etcd;

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

class EtcdBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    cluster_ = EtcdCluster::start(&error);
    ASSERT_TRUE(cluster_) << error;
    address_ = cluster_->address("sb");
  }
  // An address naming only some members (a client that can reach only those).
  std::string address_of(std::initializer_list<int> members) const {
    std::string a = "etcd://";
    for (int m : members) {
      if (a.back() != '/') a += a.size() > 7 ? "," : "";
      a += cluster_->endpoints()[static_cast<std::size_t>(m)];
    }
    return a + "/sb";
  }
  std::unique_ptr<Client> attach(const std::string& address) {
    auto c = Client::attach(address);
    EXPECT_TRUE(c) << c.status().to_string();
    return c ? std::move(*c) : nullptr;
  }

  std::unique_ptr<EtcdCluster> cluster_;
  std::string address_;
};

// Increments "n" under an exclusive lock `count` times, retrying what the cluster could not do,
// and reports each acknowledged commit's token; "unsure" for a commit whose outcome is unknown
// (the cluster failed mid-call: it may or may not have applied).
int increment_worker(const std::string& address, int count, Channel& ch) {
  std::unique_ptr<Client> c;
  for (int attempt = 0; !c && attempt < 50; ++attempt) {
    auto a = Client::attach(address);
    if (a) c = std::move(*a);
  }
  if (!c) return 10;
  auto s = c->open_or_create("counter");
  for (int tries = 0; !s && tries < 50; ++tries) s = c->open_or_create("counter");
  if (!s) return 11;
  int done = 0;
  while (done < count) {
    auto l = s->session.lock({"n"}, Mode::kExclusive, in(10s));
    if (!l) {
      if (l.code() == ErrorCode::kUnavailable || l.code() == ErrorCode::kTimeout) continue;
      return 12;
    }
    auto v = l->get("n");
    if (!v) {
      (void)l->discard();
      (void)s->session.release(in(5s));
      continue;
    }
    const long n = v->has_value() ? std::stol(**v) : 0;
    (void)l->put("n", std::to_string(n + 1));
    const std::uint64_t token = l->token();
    auto st = l->commit();
    if (st) {
      ch.send("ok " + std::to_string(token));
      ++done;
    } else if (st.code() == ErrorCode::kUnavailable) {
      ch.send("unsure");
    }
    (void)l->discard();
    (void)s->session.release(in(5s));  // hand over: every increment is a handoff
  }
  ch.send("done");
  return 0;
}

long read_counter(const std::string& address) {
  auto c = Client::attach(address);
  if (!c) return -1;
  auto s = (*c)->open("counter");
  if (!s) return -2;
  auto l = s->lock({"n"}, Mode::kShared, in(10s));
  if (!l) return -3;
  auto v = l->get("n");
  return v && v->has_value() ? std::stol(**v) : -4;
}

TEST_F(EtcdBackendTest, LeaderKilledDuringALockStormLosesNoCommitAndGrantsNoTokenTwice) {
  constexpr int kWorkers = 4, kEach = 40;
  std::vector<Child> workers;
  for (int i = 0; i < kWorkers; ++i)
    workers.push_back(Child::spawn([&](Channel& ch) { return increment_worker(address_, kEach, ch); }));
  std::set<std::uint64_t> tokens;
  long acked = 0, unsure = 0;
  std::vector<bool> finished(kWorkers, false);
  bool killed = false;
  int done = 0;
  while (done < kWorkers) {
    bool any = false;
    for (int i = 0; i < kWorkers; ++i) {
      if (finished[i]) continue;
      auto line = workers[i].channel().receive(20ms);
      if (!line) continue;
      any = true;
      if (*line == "done") {
        finished[i] = true;
        ++done;
      } else if (*line == "unsure") {
        ++unsure;
      } else {
        ++acked;
        EXPECT_TRUE(tokens.insert(std::stoull(line->substr(3))).second) << "token granted twice: " << *line;
      }
    }
    if (!killed && acked >= kWorkers * kEach / 3) {
      const int leader = cluster_->leader_index();
      ASSERT_GE(leader, 0);
      ASSERT_TRUE(cluster_->kill(leader));
      std::printf("[ info ] killed leader %d after %ld commits\n", leader, acked);
      killed = true;
    }
    if (!any && !killed) continue;
  }
  for (auto& w : workers) EXPECT_EQ(w.wait(30s), 0);
  ASSERT_TRUE(killed);
  EXPECT_EQ(acked, kWorkers * kEach) << "locks did not resume after the leader died";
  const long n = read_counter(address_);
  std::printf("[ info ] counter %ld, acknowledged %ld, outcome unknown %ld\n", n, acked, unsure);
  EXPECT_GE(n, acked) << "an acknowledged commit was lost";
  EXPECT_LE(n, acked + unsure) << "more increments than commits: two holders at once";
}

// A holder killed with kill -9. Its agent sees EOF and revokes the process lease at once. If the
// agent dies too (the host is lost, or both were killed), the lease expires after its TTL (2 s
// plus at most a renewal period), unless `session-broker --store` on its host sees the holder's
// pid exit and revokes the lease itself.
struct Recovery {
  double ms;
  bool granted;
};
enum class Kill { kHolder, kHolderAndAgent };

// The etcd agent this process started (a child of its main thread).
pid_t own_agent() {
  std::ifstream in("/proc/self/task/" + std::to_string(getpid()) + "/children");
  pid_t pid = 0;
  in >> pid;
  return pid;
}

Recovery kill_holder_and_wait(const std::string& address, const char* host, Kill what) {
  auto holder = Child::spawn([&](Channel& ch) {
    if (host) setenv("SESSIONBROKER_HOST_ID", host, 1);
    auto c = Client::attach(address);
    if (!c) return 10;
    auto s = (*c)->open_or_create("s");
    if (!s) return 11;
    auto l = s->session.lock_all(Mode::kExclusive, in(10s));
    if (!l) return 12;
    ch.send(std::to_string(own_agent()));
    ch.receive(60s);
    return 0;
  });
  auto agent_line = holder.channel().receive();
  if (!agent_line) return {0, false};
  const pid_t agent = static_cast<pid_t>(std::stol(*agent_line));
  auto waiter = Child::spawn([&](Channel& ch) {
    auto c = Client::attach(address);
    if (!c) return 10;
    auto s = (*c)->open("s");
    if (!s) return 11;
    ch.send("asking");
    auto l = s->lock_all(Mode::kExclusive, in(20s));
    ch.send(l ? "granted" : "failed " + l.status().to_string());
    return 0;
  });
  if (waiter.channel().receive() != "asking") return {0, false};
  if (waiter.channel().receive(300ms)) return {0, false};  // granted while held: wrong
  const auto t0 = std::chrono::steady_clock::now();
  if (what == Kill::kHolderAndAgent && agent > 0) ::kill(agent, SIGKILL);
  holder.kill9();
  auto line = waiter.channel().receive(20s);
  return {ms_since(t0), line == "granted"};
}

TEST_F(EtcdBackendTest, KilledHolderIsReplacedAtOnceThroughItsAgent) {
  const Recovery r = kill_holder_and_wait(address_, nullptr, Kill::kHolder);
  ASSERT_TRUE(r.granted);
  std::printf("[ info ] holder killed (its agent revokes the lease): next grant after %.1f ms\n", r.ms);
}

TEST_F(EtcdBackendTest, LostHostsHolderIsReplacedWhenItsLeaseExpires) {
  const Recovery r = kill_holder_and_wait(address_, nullptr, Kill::kHolderAndAgent);
  ASSERT_TRUE(r.granted);
  std::printf("[ info ] holder and agent killed, no broker: next grant after %.1f ms (lease TTL %lld s)\n", r.ms,
              static_cast<long long>(etcd::kProcessLeaseTtlSeconds));
}

TEST_F(EtcdBackendTest, KilledHolderAndAgentAreReplacedAtOnceByTheLocalBroker) {
  sessionbroker::broker::BrokerChild broker(SESSION_BROKER_BIN, address_, {"--host-id", "host-a"});
  ASSERT_TRUE(broker.start());
  const Recovery r = kill_holder_and_wait(address_, "host-a", Kill::kHolderAndAgent);
  ASSERT_TRUE(r.granted);
  std::printf("[ info ] holder and agent killed, broker on its host: next grant after %.1f ms\n", r.ms);
  EXPECT_EQ(broker.terminate(), 0);
}

// A client cut off from the cluster (the only member it knows stopped) keeps its lock only until
// its lease is gone: then another process is granted, and the cut-off holder's commit fails with
// kStaleToken: nothing it wrote afterwards is visible.
TEST_F(EtcdBackendTest, ClientCutOffFromTheClusterCannotCommitOnceItsLeaseIsGone) {
  const int lone = (cluster_->leader_index() + 1) % 3;  // a follower: the other two keep a leader
  const int a = (lone + 1) % 3, b = (lone + 2) % 3;
  auto cut = Child::spawn([&](Channel& ch) {
    auto c = Client::attach(address_of({lone}));
    if (!c) return 10;
    std::mutex mu;
    std::condition_variable told;
    bool lost = false;
    (*c)->on_revoke([&](const sessionbroker::RevokeEvent& e) {
      if (e.kind != sessionbroker::RevokeEvent::Kind::kLost) return;
      std::lock_guard lk(mu);
      lost = true;
      told.notify_all();
    });
    auto s = (*c)->open_or_create("s");
    if (!s) return 11;
    auto l = s->session.lock({"v"}, Mode::kExclusive, in(10s));
    if (!l || !l->put("v", "before") || !l->commit()) return 12;
    (void)l->put("v", "after the cut");
    ch.send("held");
    ch.receive(60s);  // the test cut us off and the lease went: cut off, the keep-alive must tell
    bool heard;
    {
      std::unique_lock lk(mu);
      heard = told.wait_for(lk, 5s, [&] { return lost; });
    }
    ch.send(heard ? "lost" : "not told");
    ch.receive(60s);  // reconnected
    auto st = l->commit();
    ch.send(st ? "committed" : std::string(sessionbroker::to_string(st.code())));
    return 0;
  });
  ASSERT_EQ(cut.channel().receive(), "held");
  ASSERT_TRUE(cluster_->pause(lone));
  auto other = Child::spawn([&](Channel& ch) {
    auto c = Client::attach(address_of({a, b}));
    if (!c) return 10;
    auto s = (*c)->open("s");
    if (!s) return 11;
    auto l = s->lock({"v"}, Mode::kExclusive, in(20s));
    if (!l) return 12;
    if (!l->put("v", "from the other") || !l->commit()) return 13;
    ch.send("granted");
    return 0;
  });
  EXPECT_EQ(other.channel().receive(20s), "granted");
  EXPECT_EQ(other.wait(), 0);
  cut.channel().send("lost?");
  EXPECT_EQ(cut.channel().receive(10s), "lost") << "a holder cut off from the cluster was not told its lease is gone";
  ASSERT_TRUE(cluster_->resume(lone));
  cut.channel().send("commit now");
  EXPECT_EQ(cut.channel().receive(20s), "stale token");
  auto c = attach(address_);
  auto s = c->open("s");
  auto l = s->lock({"v"}, Mode::kShared, in(10s));
  ASSERT_TRUE(l) << l.status().to_string();
  EXPECT_EQ(l->get("v")->value_or(""), "from the other");
}

TEST_F(EtcdBackendTest, AMemberRestartedUnderLoadLosesNothing) {
  std::vector<Child> workers;
  for (int i = 0; i < 2; ++i)
    workers.push_back(Child::spawn([&](Channel& ch) { return increment_worker(address_, 30, ch); }));
  long acked = 0, unsure = 0;
  bool restarted = false;
  for (int done = 0; done < 2;) {
    for (auto& w : workers) {
      auto line = w.channel().receive(20ms);
      if (!line) continue;
      if (*line == "done") ++done;
      else if (*line == "unsure") ++unsure;
      else ++acked;
    }
    if (!restarted && acked >= 10) {
      const int m = (cluster_->leader_index() + 1) % 3;
      ASSERT_TRUE(cluster_->kill(m));
      ASSERT_TRUE(cluster_->restart(m));
      restarted = true;
    }
  }
  for (auto& w : workers) EXPECT_EQ(w.wait(30s), 0);
  const long n = read_counter(address_);
  EXPECT_GE(n, acked);
  EXPECT_LE(n, acked + unsure);
}

// Pitfall: a waiter whose own lease is gone must not keep waiting (its queue key went with the
// lease: it can never be granted). Revoke the waiter's lease by hand; its lock call returns.
TEST_F(EtcdBackendTest, AWaiterWhoseLeaseIsRevokedStopsWaiting) {
  auto holder = Child::spawn([&](Channel& ch) {
    auto c = Client::attach(address_);
    auto s = (*c)->open_or_create("s");
    auto l = s->session.lock_all(Mode::kExclusive, in(10s));
    ch.send(l ? "held" : "failed");
    ch.receive(60s);
    return 0;
  });
  ASSERT_EQ(holder.channel().receive(), "held");
  auto waiter = Child::spawn([&](Channel& ch) {
    auto c = Client::attach(address_);
    auto s = (*c)->open("s");
    ch.send("asking");
    const auto t0 = std::chrono::steady_clock::now();
    auto l = s->lock_all(Mode::kExclusive, in(30s));
    ch.send(std::string(sessionbroker::to_string(l.code())) + " after " + std::to_string(static_cast<int>(ms_since(t0))));
    return 0;
  });
  ASSERT_EQ(waiter.channel().receive(), "asking");
  auto admin = etcd::Client::connect(cluster_->endpoints());
  ASSERT_TRUE(admin);
  // The waiter's queue key is the second one; its lease is the waiter's process lease.
  const etcd::Keys keys{"sb"};
  std::int64_t lease = 0;
  ASSERT_TRUE(eventually([&] {
    auto info = etcd::read_session(**admin, keys, "s");
    if (!info || info->queue.size() < 2) return false;
    lease = info->queue[1].lease;
    return true;
  }));
  ASSERT_TRUE((*admin)->revoke(lease));
  auto line = waiter.channel().receive(10s);
  ASSERT_TRUE(line) << "the waiter kept waiting after its lease was revoked";
  EXPECT_EQ(line->substr(0, line->find(" after")), "store unavailable") << *line;
}

// Pitfall: a lock taken without a lease outlives its holder (or, with etcd's v3lock default
// session, vanishes after 60 s). Every queue key carries the process lease, kept alive.
TEST_F(EtcdBackendTest, EveryQueueKeyCarriesTheProcessLease) {
  auto c = Client::attach(address_);
  ASSERT_TRUE(c);
  auto s = (*c)->create("s");
  auto l = s->lock_all(Mode::kExclusive, in(5s));
  ASSERT_TRUE(l);
  auto admin = etcd::Client::connect(cluster_->endpoints());
  auto info = etcd::read_session(**admin, etcd::Keys{"sb"}, "s");
  ASSERT_TRUE(info);
  ASSERT_EQ(info->queue.size(), 1u);
  EXPECT_NE(info->queue[0].lease, 0);
  auto ttl = (*admin)->time_to_live(info->queue[0].lease);
  ASSERT_TRUE(ttl);
  EXPECT_GT(ttl->ttl(), 0);
  EXPECT_LE(ttl->ttl(), etcd::kProcessLeaseTtlSeconds);
}

// Pitfall: a release that deletes by name can delete a newer lock of the same process (a delete
// applied late, or repeated by a retry, after the process locked again). Here the process's grant
// is broken and it locks again; then the old grant's release, and a delete of its key's name
// arriving late, remove nothing of the new lock: each request's key has a name of its own.
TEST_F(EtcdBackendTest, AStaleReleaseNeverDeletesTheNewerLockOfTheSameProcess) {
  auto b = etcd::EtcdBackend::attach(address_);
  ASSERT_TRUE(b) << b.status().to_string();
  auto h = (*b)->create_session("s", 0);
  ASSERT_TRUE(h);
  auto admin = etcd::Client::connect(cluster_->endpoints());
  ASSERT_TRUE(admin);
  const std::string qp = etcd::Keys::queue_prefix(etcd::Keys{"sb"}.session("s"));
  auto key_of = [&](std::uint64_t token) -> std::string {  // the queue key with this token, or ""
    auto r = (*admin)->range(qp, etcd::prefix_end(qp));
    if (!r) return {};
    for (const auto& kv : r->kvs())
      if (static_cast<std::uint64_t>(kv.create_revision()) == token) return kv.key();
    return {};
  };
  auto g1 = (*b)->acquire(*h, Mode::kExclusive, sessionbroker::detail::Clock::now() + 5s);
  ASSERT_TRUE(g1);
  const std::string key1 = key_of(g1->token);
  ASSERT_FALSE(key1.empty());
  ASSERT_TRUE((*admin)->delete_range(key1));  // break-lock
  ASSERT_TRUE(eventually([&] { return (*b)->grant_status(*g1) == sessionbroker::detail::GrantStatus::kLost; }));
  EXPECT_EQ((*b)->release(*h, *g1).code(), ErrorCode::kStaleToken);
  auto g2 = (*b)->acquire(*h, Mode::kExclusive, sessionbroker::detail::Clock::now() + 5s);
  ASSERT_TRUE(g2);
  EXPECT_GT(g2->token, g1->token);
  EXPECT_NE((*b)->release(*h, *g1).code(), ErrorCode::kOk);
  ASSERT_TRUE((*admin)->delete_range(key1));  // the first release's delete, arriving late
  const std::string key2 = key_of(g2->token);
  EXPECT_FALSE(key2.empty()) << "a delete of the old grant's key removed the newer lock";
  EXPECT_NE(key2, key1);
  EXPECT_EQ((*b)->grant_status(*g2), sessionbroker::detail::GrantStatus::kHeld);
  EXPECT_TRUE((*b)->release(*h, *g2));
  EXPECT_TRUE(key_of(g2->token).empty()) << "the release left its key";
}

// A break-lock reaches the holder's view as a watch event, which may come late (CI saw PHP's next
// request lock on the lost grant again and fail its read). A fenced call that finds the key gone
// knows first: the grant's words say lost at once. Here the watch's events are held back while the
// key is deleted and the holder reads.
struct WatchHold {
  std::mutex mu;
  std::condition_variable cv;
  bool held = false;
} g_watch_hold;
void hold_watch_events(sessionbroker::detail::TestPoint p) {
  if (p != sessionbroker::detail::TestPoint::kWatchEvents) return;
  std::unique_lock lk(g_watch_hold.mu);
  g_watch_hold.cv.wait_for(lk, 10s, [] { return !g_watch_hold.held; });
}
void set_watch_hold(bool held) {
  std::lock_guard lk(g_watch_hold.mu);
  g_watch_hold.held = held;
  g_watch_hold.cv.notify_all();
}

TEST_F(EtcdBackendTest, AFencedReadThatFindsTheGrantGoneMarksItLostBeforeTheWatchDoes) {
  auto b = etcd::EtcdBackend::attach(address_);
  ASSERT_TRUE(b) << b.status().to_string();
  auto h = (*b)->create_session("s", 0);
  ASSERT_TRUE(h);
  auto g = (*b)->acquire(*h, Mode::kExclusive, sessionbroker::detail::Clock::now() + 5s);
  ASSERT_TRUE(g);
  auto admin = etcd::Client::connect(cluster_->endpoints());
  ASSERT_TRUE(admin);
  const std::string qp = etcd::Keys::queue_prefix(etcd::Keys{"sb"}.session("s"));
  auto keys = (*admin)->range(qp, etcd::prefix_end(qp));
  ASSERT_TRUE(keys && keys->kvs_size() == 1);
  set_watch_hold(true);
  sessionbroker::detail::set_test_hook(&hold_watch_events);
  ASSERT_TRUE((*admin)->delete_range(keys->kvs(0).key()));  // break-lock
  EXPECT_EQ((*b)->read(*h, *g, "a", nullptr).code(), ErrorCode::kStaleToken);
  EXPECT_EQ((*b)->grant_status(*g), sessionbroker::detail::GrantStatus::kLost)
      << "the read knew the grant was gone; its words still say held";
  set_watch_hold(false);
  sessionbroker::detail::set_test_hook(nullptr);
  EXPECT_EQ((*b)->release(*h, *g).code(), ErrorCode::kStaleToken);
}

// A held session never expires (as on shared memory): the holder's process renews the session
// lease while it holds a grant, and the idle clock starts again when it lets go.
TEST_F(EtcdBackendTest, AHeldSessionOutlivesItsTtlAndExpiresOnceIdle) {
  auto c = attach(address_);
  ASSERT_TRUE(c);
  auto s = c->create("s", 1s);
  ASSERT_TRUE(s);
  auto l = s->lock({"a"}, Mode::kExclusive, in(5s));
  ASSERT_TRUE(l);
  std::this_thread::sleep_for(3500ms);  // three and a half TTLs with the lock held and unused
  ASSERT_TRUE(l->put("a", "still here"));
  EXPECT_TRUE(l->unlock()) << "the session expired under its holder";
  ASSERT_TRUE(s->release(in(5s)));
  auto admin = etcd::Client::connect(cluster_->endpoints());
  ASSERT_TRUE(admin);
  const std::string key = etcd::Keys{"sb"}.session("s");
  auto r = (*admin)->range(key);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->kvs_size(), 1);
  EXPECT_TRUE(eventually([&] { auto now = (*admin)->range(key); return now && now->kvs_size() == 0; }, 10s))
      << "the session did not expire once released";
}

// The agent killed under a living application: the application hears at once that its locks are
// lost (no call need be in flight: the socket's hang-up is watched), and later calls fail clearly.
TEST_F(EtcdBackendTest, AnAgentKilledUnderItsApplicationLosesItsLocksAndSaysSo) {
  auto c = attach(address_);
  ASSERT_TRUE(c);
  std::mutex m;
  std::condition_variable cv;
  bool lost = false;
  c->on_revoke([&](const RevokeEvent& e) {
    if (e.kind != RevokeEvent::Kind::kLost) return;
    std::lock_guard lk(m);
    lost = true;
    cv.notify_all();
  });
  auto s = c->create("s");
  ASSERT_TRUE(s);
  { ASSERT_TRUE(s->lock_all(Mode::kExclusive, in(5s))); }  // cached, idle
  // The agent Client::attach started is this thread's only child.
  std::ifstream children("/proc/self/task/" + std::to_string(getpid()) + "/children");
  pid_t agent = 0;
  children >> agent;
  ASSERT_GT(agent, 0);
  ASSERT_EQ(::kill(agent, SIGKILL), 0);
  {
    std::unique_lock lk(m);
    EXPECT_TRUE(cv.wait_for(lk, 10s, [&] { return lost; })) << "no kLost after the agent died";
  }
  auto again = s->lock_all(Mode::kExclusive, in(2s));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.code(), ErrorCode::kUnavailable) << again.status().to_string();
}

// A TTL shortened under a lock is the one the holder renews by: the session outlives the new,
// shorter TTL while held (the default TTL is 30 min; renewing at its pace would let 1 s expire).
TEST_F(EtcdBackendTest, ATtlShortenedUnderALockIsRenewedByTheNewTtl) {
  auto c = attach(address_);
  ASSERT_TRUE(c);
  auto s = c->create("s");
  ASSERT_TRUE(s);
  auto l = s->lock({"a"}, Mode::kExclusive, in(5s));
  ASSERT_TRUE(l);
  ASSERT_TRUE(l->set_ttl(1s));
  std::this_thread::sleep_for(3500ms);  // the scenario itself: three and a half new TTLs, held, unused
  ASSERT_TRUE(l->put("a", "still here"));
  EXPECT_TRUE(l->unlock()) << "the session expired under its holder";
}

// Queue keys left by an earlier session of the same id (docs/etcd.md E7) do not stand in front of
// the new session's requests: creating the session deletes them in the same transaction.
TEST_F(EtcdBackendTest, ASessionCreatedAgainStartsWithAnEmptyQueue) {
  auto admin = etcd::Client::connect(cluster_->endpoints());
  ASSERT_TRUE(admin);
  auto lease = (*admin)->grant(60);
  ASSERT_TRUE(lease);
  const std::string leftover = etcd::Keys::queue(etcd::Keys{"sb"}.session("s"), lease->id, 1);
  ASSERT_TRUE((*admin)->put(leftover, "X", lease->id));  // a holder of the expired session "s"
  auto c = attach(address_);
  ASSERT_TRUE(c);
  auto s = c->create("s");
  ASSERT_TRUE(s);
  auto l = s->lock_all(Mode::kExclusive, in(2s));
  EXPECT_TRUE(l) << l.status().to_string();
  auto r = (*admin)->range(leftover);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->kvs_size(), 0);
}

}  // namespace
}  // namespace sbtest
