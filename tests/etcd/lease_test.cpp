// Leases and KeepAlive against a real cluster: a kept lease outlives its TTL; one that can no
// longer be renewed (revoked, or the whole cluster stopped) is reported lost and its keys go.
#include "etcd_fixture.hpp"
#include "keep_alive.hpp"

namespace sbtest {
namespace {

class EtcdLease : public EtcdTest {};

struct LostLeases {
  Inbox<std::int64_t> ids;
  etcd::KeepAlive::OnLost fn() {
    return [this](std::int64_t id, const std::string& why) {
      std::printf("[ info ] lease %llx lost: %s\n", static_cast<unsigned long long>(id), why.c_str());
      ids.push(id);
    };
  }
};

TEST_F(EtcdLease, KeptAliveOutlivesItsTtl) {
  auto lease = client_->grant(1);
  ASSERT_TRUE(lease) << lease.status().to_string();
  ASSERT_EQ(lease->ttl_seconds, 1);
  put(*client_, "ls/k", "v", lease->id);
  LostLeases lost;
  etcd::KeepAlive ka(*client_, lost.fn());
  ka.add(*lease);
  // Three TTLs pass (a duration is the point of this test, not a synchronisation).
  const auto until = lease->sent_at + 3s;
  while (etcd::Clock::now() < until) {
    ASSERT_EQ(client_->range("ls/k")->kvs_size(), 1) << "the key outlives its lease's TTL";
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(lost.ids.items().empty());
  auto ttl = client_->time_to_live(lease->id);
  ASSERT_TRUE(ttl);
  EXPECT_GE(ttl->ttl(), 0);
  ASSERT_TRUE(ka.alive_until(lease->id).has_value());
  EXPECT_GT(*ka.alive_until(lease->id), etcd::Clock::now());
}

TEST_F(EtcdLease, KeepAliveSurvivesTheLeaderBeingKilled) {
  auto lease = client_->grant(2);
  ASSERT_TRUE(lease);
  put(*client_, "ll/k", "v", lease->id);
  LostLeases lost;
  etcd::KeepAlive ka(*client_, lost.fn());
  ka.add(*lease);
  const int leader = cluster_->leader_index();
  ASSERT_GE(leader, 0);
  ASSERT_TRUE(cluster_->kill(leader));
  // Two TTLs pass after the kill (the duration is the point, as above): the key stays and no
  // loss is reported at any moment of them, not only at the end.
  const auto until = etcd::Clock::now() + 4s;
  while (etcd::Clock::now() < until) {
    ASSERT_TRUE(lost.ids.items().empty()) << "the lease was reported lost after the leader died";
    auto r = client_->range("ll/k");
    if (r) {  // a read during the failover may fail; one that answers must find the key
      ASSERT_EQ(r->kvs_size(), 1) << "the key was gone after the leader died";
    }
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(client_->range("ll/k")->kvs_size(), 1);
}

TEST_F(EtcdLease, RevokedLeaseIsReportedLostAndItsKeysAreGone) {
  auto lease = client_->grant(3);
  ASSERT_TRUE(lease);
  put(*client_, "rv/k", "v", lease->id);
  LostLeases lost;
  etcd::KeepAlive ka(*client_, lost.fn());
  ka.add(*lease);
  ASSERT_TRUE(client_->revoke(lease->id));
  ASSERT_TRUE(lost.ids.wait_for(1)) << "the next renewal hears TTL 0";
  EXPECT_EQ(lost.ids.items()[0], lease->id);
  EXPECT_FALSE(ka.alive_until(lease->id).has_value());
  EXPECT_EQ(client_->range("rv/k")->kvs_size(), 0);
  EXPECT_EQ(client_->revoke(lease->id).code(), ErrorCode::kNotFound);
  EXPECT_EQ(client_->time_to_live(lease->id)->ttl(), -1);
}

// Every member stopped: no renewal can be answered. The lease must be reported lost once its
// TTL has run out since the last answered renewal, and once the cluster is back
// and the lease has expired there, its key is gone.
TEST_F(EtcdLease, LeaseIsReportedLostWhenNoMemberAnswers) {
  auto lease = client_->grant(1);
  ASSERT_TRUE(lease);
  put(*client_, "st/k", "v", lease->id);
  LostLeases lost;
  etcd::KeepAlive ka(*client_, lost.fn());
  ka.add(*lease);
  ASSERT_TRUE(eventually([&] {
    auto until = ka.alive_until(lease->id);
    return until && *until > lease->sent_at + 1s;
  }))
      << "a renewal was answered";
  const auto known_until = *ka.alive_until(lease->id);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(cluster_->pause(i));
  ASSERT_TRUE(lost.ids.wait_for(1, 10s));
  const auto reported = etcd::Clock::now();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(cluster_->resume(i));
  std::printf("[ info ] lost reported %lld ms after the last known deadline\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(reported - known_until).count()));
  ASSERT_TRUE(eventually([&] {
    auto r = client_->range("st/k");
    return r && r->kvs_size() == 0;
  }, 20s)) << "the lease expires on the server too, and its key with it";
}

}  // namespace
}  // namespace sbtest
