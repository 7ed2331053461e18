// hasleader: a member cut off from the leader (the other two SIGSTOPped) must refuse requests and
// end watch streams with kUnavailable instead of answering stale data or staying silently open.
#include "etcd_fixture.hpp"
#include "watcher.hpp"

namespace sbtest {
namespace {

class EtcdLeader : public EtcdTest {};

TEST_F(EtcdLeader, MemberWithoutLeaderAnswersUnavailable) {
  auto o = quick();
  o.request_timeout = 2s;
  auto lone = connect(members({0}), o);  // only member 0: no other member to fail over to
  etcd::Watcher watcher(*lone);
  Inbox<std::int64_t> seen;
  auto w = watcher.watch("ld/k", "", 0, [&](const etcd::Events& ev, std::int64_t) {
    for (const auto& e : ev) seen.push(e.kv().mod_revision());
  }, nullptr);
  ASSERT_TRUE(w) << w.status().to_string();
  ASSERT_TRUE(eventually([&] { return watcher.status().is_ok(); }));

  ASSERT_TRUE(cluster_->pause(1));
  ASSERT_TRUE(cluster_->pause(2));
  // Member 0 loses its leader within an election timeout (later when the machine is busy: until it
  // knows, a request waits for a quorum and times out); from then on a request fails fast.
  ASSERT_TRUE(eventually([&] {
    auto r = lone->range("ld/k");
    return r.code() == ErrorCode::kUnavailable && r.status().message().find("no leader") != std::string::npos;
  }, 20s));
  const auto t0 = etcd::Clock::now();
  auto r = lone->range("ld/k");
  const auto took = etcd::Clock::now() - t0;
  EXPECT_EQ(r.code(), ErrorCode::kUnavailable) << r.status().to_string();
  EXPECT_NE(r.status().message().find("no leader"), std::string::npos) << r.status().message();
  EXPECT_EQ(lone->put("ld/k", "x").code(), ErrorCode::kUnavailable);
  std::printf("[ info ] a range at a leaderless member failed after %lld ms (request timeout 2000 ms)\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()));

  // The open watch stream is ended by the member (three election timeouts without a leader)
  // and cannot be re-opened: the watcher says so instead of staying silently open.
  ASSERT_TRUE(eventually([&] { return watcher.status().code() == ErrorCode::kUnavailable; }, 10s))
      << watcher.status().to_string();
  auto w2 = watcher.watch("ld/other", "", 0, nullptr, nullptr);
  EXPECT_EQ(w2.code(), ErrorCode::kUnavailable) << w2.status().to_string();

  // Healed: requests work again and the watch resumes where it was.
  ASSERT_TRUE(cluster_->resume(1));
  ASSERT_TRUE(cluster_->resume(2));
  ASSERT_TRUE(eventually([&] { return lone->range("ld/k").is_ok(); }, 15s));
  const auto rev = put(*lone, "ld/k", "after");
  ASSERT_TRUE(seen.wait_for(1, 15s)) << watcher.status().to_string();
  EXPECT_EQ(seen.items().front(), rev);
}

}  // namespace
}  // namespace sbtest
