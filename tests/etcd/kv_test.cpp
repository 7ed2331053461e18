// KV calls against a real cluster: reads, writes, transactions fenced by create_revision (how the
// backend fences every access with its token), and failover of unary calls.
#include "etcd_fixture.hpp"

namespace sbtest {
namespace {

using etcdserverpb::Compare;
using etcdserverpb::TxnRequest;

class EtcdKv : public EtcdTest {};

// A txn that writes `value` to `key` only while its create_revision equals `token` (0: absent).
TxnRequest guarded_put(const std::string& key, std::int64_t token, const std::string& value) {
  TxnRequest t;
  auto* c = t.add_compare();
  c->set_key(key);
  c->set_target(Compare::CREATE);
  c->set_result(Compare::EQUAL);
  c->set_create_revision(token);
  auto* p = t.add_success()->mutable_request_put();
  p->set_key(key);
  p->set_value(value);
  t.add_failure()->mutable_request_range()->set_key(key);
  return t;
}

TEST_F(EtcdKv, PutRangeAndDelete) {
  const auto rev = put(*client_, "kv/a", "1");
  put(*client_, "kv/b", "2");
  put(*client_, "kw", "outside");
  auto a = client_->range("kv/a");
  ASSERT_TRUE(a) << a.status().to_string();
  ASSERT_EQ(a->kvs_size(), 1);
  EXPECT_EQ(a->kvs(0).value(), "1");
  EXPECT_EQ(a->kvs(0).create_revision(), rev);
  auto all = client_->range("kv/", etcd::prefix_end("kv/"));
  ASSERT_TRUE(all);
  EXPECT_EQ(all->kvs_size(), 2) << "the prefix range holds kv/a and kv/b only";
  etcd::RangeOptions count;
  count.count_only = true;
  EXPECT_EQ(client_->range("kv/", etcd::prefix_end("kv/"), count)->count(), 2);
  etcd::RangeOptions old;
  old.revision = rev;
  EXPECT_EQ(client_->range("kv/", etcd::prefix_end("kv/"), old)->kvs_size(), 1) << "as of the first put";
  auto del = client_->delete_range("kv/", etcd::prefix_end("kv/"));
  ASSERT_TRUE(del);
  EXPECT_EQ(del->deleted(), 2);
  EXPECT_EQ(client_->range("kv/a")->kvs_size(), 0);
}

// The token protocol: create-if-absent succeeds once (so a retried create is harmless), a write
// compared to the current token succeeds, one compared to an older incarnation's token fails.
TEST_F(EtcdKv, TxnComparesCreateRevision) {
  auto created = client_->txn(guarded_put("q/s1/p1", 0, "exclusive"));
  ASSERT_TRUE(created) << created.status().to_string();
  ASSERT_TRUE(created->succeeded());
  const std::int64_t token = created->header().revision();
  auto again = client_->txn(guarded_put("q/s1/p1", 0, "exclusive"));
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->succeeded()) << "a repeated create-if-absent changes nothing";
  ASSERT_EQ(again->responses(0).response_range().kvs(0).create_revision(), token);

  auto fenced = client_->txn(guarded_put("q/s1/p1", token, "commit-1"));
  ASSERT_TRUE(fenced);
  EXPECT_TRUE(fenced->succeeded());

  ASSERT_TRUE(client_->delete_range("q/s1/p1"));  // released; then granted again, to a new token
  auto regrant = client_->txn(guarded_put("q/s1/p1", 0, "exclusive"));
  ASSERT_TRUE(regrant && regrant->succeeded());
  EXPECT_GT(regrant->header().revision(), token) << "tokens strictly increase";
  auto stale = client_->txn(guarded_put("q/s1/p1", token, "stale write"));
  ASSERT_TRUE(stale);
  EXPECT_FALSE(stale->succeeded()) << "the old holder's token no longer matches";
  EXPECT_EQ(client_->range("q/s1/p1")->kvs(0).value(), "exclusive");
}

TEST_F(EtcdKv, FailsOverWhenTheFirstEndpointIsDead) {
  ASSERT_TRUE(cluster_->kill(0));
  // A fresh client, so nothing has taught it which member answers: it starts with the dead one.
  auto c = connect(cluster_->endpoints());
  const auto rev = put(*c, "fo/k", "v");
  EXPECT_GT(rev, 0);
  auto r = c->range("fo/k");
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_EQ(r->kvs(0).value(), "v");
  EXPECT_NE(c->preferred(), 0u) << "the client now starts with a live member";
}

TEST_F(EtcdKv, FailsOverWhenTheFirstEndpointIsStopped) {
  ASSERT_TRUE(cluster_->pause(0));
  auto c = connect(cluster_->endpoints());
  auto r = c->txn(TxnRequest{});  // an empty txn: a linearizable round trip
  EXPECT_TRUE(r) << r.status().to_string();
  ASSERT_TRUE(cluster_->resume(0));
}

TEST_F(EtcdKv, StatusFindsTheLeader) {
  const int expected = cluster_->leader_index();
  ASSERT_GE(expected, 0);
  auto leader = client_->leader();
  ASSERT_TRUE(leader) << leader.status().to_string();
  EXPECT_EQ(*leader, static_cast<std::size_t>(expected));
}

// etcd's own lock service, the bench's reference point, through the same client.
TEST_F(EtcdKv, V3LockServiceLocksAndUnlocks) {
  auto lease = client_->grant(5);
  ASSERT_TRUE(lease);
  std::string key;
  auto held = client_->lock("bench/lock", lease->id, &key);
  ASSERT_TRUE(held) << held.status().to_string();
  EXPECT_EQ(key.rfind("bench/lock/", 0), 0u) << key;
  EXPECT_EQ(client_->range(key)->kvs(0).create_revision(), held->revision());
  ASSERT_TRUE(client_->unlock(key));
  EXPECT_EQ(client_->range(key)->kvs_size(), 0);
}

TEST_F(EtcdKv, UnavailableNamesEveryEndpointWhenNoneAnswers) {
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(cluster_->kill(i));
  auto o = quick();
  o.request_timeout = 1s;
  auto c = connect(cluster_->endpoints(), o);
  auto r = c->range("k");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.code(), ErrorCode::kUnavailable);
  for (const auto& ep : cluster_->endpoints())
    EXPECT_NE(r.status().message().find(ep), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace sbtest
