#include "claim_fixture.hpp"

#include <unistd.h>

#include <algorithm>
#include <map>
#include <ostream>

#ifdef SESSIONBROKER_WITH_ETCD
#include "etcd/etcd_backend.hpp"
#include "etcd_cluster.hpp"
#endif

namespace sbtest {

std::string to_string(StoreKind k) { return k == StoreKind::kShm ? "shm" : "etcd"; }
void PrintTo(StoreKind k, std::ostream* os) { *os << to_string(k); }

namespace {
Mode mode_of(sessionbroker::shm::LockMode m) {
  return m == sessionbroker::shm::LockMode::kExclusive ? Mode::kExclusive : Mode::kShared;
}
}  // namespace

#ifdef SESSIONBROKER_WITH_ETCD
namespace etcd = sessionbroker::detail::etcd;

// One cluster per test process (ctest runs each test in its own), started on first use and
// killed at exit; a client of its own to read the key space.
struct ClaimFixture::EtcdView {
  std::unique_ptr<etcd::Client> client;
  etcd::Keys keys;
};

namespace {
EtcdCluster* cluster() {
  static std::unique_ptr<EtcdCluster> c = [] {
    std::string error;
    auto started = EtcdCluster::start(&error);
    if (!started) ADD_FAILURE() << "etcd cluster: " << error;
    return started;
  }();
  return c.get();
}
}  // namespace
#else
struct ClaimFixture::EtcdView {};
#endif

void ClaimFixture::SetUp() {
  if (kind_ == StoreKind::kShm) return create(small_caps());
#ifdef SESSIONBROKER_WITH_ETCD
  EtcdCluster* c = cluster();
  ASSERT_NE(c, nullptr);
  static int counter = 0;
  const std::string prefix = "sbtest" + std::to_string(getpid()) + "x" + std::to_string(counter++);
  name_ = c->address(prefix);
  auto client = etcd::Client::connect(c->endpoints());
  ASSERT_TRUE(client) << client.status().to_string();
  etcd_ = std::make_shared<EtcdView>(EtcdView{std::move(*client), etcd::Keys{prefix}});
#else
  GTEST_SKIP() << "built without the etcd backend";
#endif
}

void ClaimFixture::create(const sessionbroker::shm::Capacities& caps) {
  if (!name_.empty()) TearDown();
  std::string tag = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  std::replace(tag.begin(), tag.end(), '/', '-');  // a parameterised test's name has one
  name_ = unique_segment_name(tag);
  sessionbroker::detail::CreateOptions opts;
  opts.caps = caps;
  auto seg = sessionbroker::detail::Segment::create(name_, opts);
  ASSERT_TRUE(seg) << seg.status().to_string();
  seg_ = std::move(*seg);
  bind_roles();
}

void ClaimFixture::bind_roles() { RolePointers{registry_, locks_, blobs_, admin_}.bind(*seg_); }
void ClaimFixture::reset_roles() { RolePointers{registry_, locks_, blobs_, admin_}.reset(); }

void ClaimFixture::TearDown() {
  if (kind_ == StoreKind::kShm) {
    reset_roles();
    seg_.reset();
    if (!name_.empty()) sessionbroker::detail::Segment::remove(name_);
    return;
  }
#ifdef SESSIONBROKER_WITH_ETCD
  if (etcd_) (void)etcd_->client->delete_range(etcd_->keys.prefix + "/", etcd::prefix_end(etcd_->keys.prefix + "/"));
#endif
}

bool ClaimFixture::break_lock(const std::string& id, std::uint64_t token) {
  if (kind_ == StoreKind::kShm) {
    for (std::uint32_t r = 0; r < seg_->record_count(); ++r)
      if (locks_->break_lock(r, token)) return true;
    return false;
  }
#ifdef SESSIONBROKER_WITH_ETCD
  const std::string q = etcd::Keys::queue_prefix(etcd_->keys.session(id));
  auto r = etcd_->client->range(q, etcd::prefix_end(q));
  if (!r) return false;
  for (const auto& kv : r->kvs()) {
    if (kv.create_revision() != static_cast<std::int64_t>(token)) continue;
    etcdserverpb::TxnRequest t;
    auto* c = t.add_compare();
    c->set_key(kv.key());
    c->set_target(etcdserverpb::Compare::CREATE);
    c->set_create_revision(kv.create_revision());
    t.add_success()->mutable_request_delete_range()->set_key(kv.key());
    auto done = etcd_->client->txn(t);
    return done && done->succeeded();
  }
#endif
  (void)id;
  return false;
}

std::optional<Snapshot> ClaimFixture::snap(const std::string& id) {
  Snapshot out;
  if (kind_ == StoreKind::kShm) {
    auto ref = registry_->open_session(id);
    if (!ref) return std::nullopt;
    auto s = admin_->snapshot(ref->slot);
    if (!s) return std::nullopt;
    for (auto& h : s->holders) out.holders.push_back({h.pid, mode_of(h.mode), h.token, h.revoke});
    for (auto& w : s->queue) out.queue.push_back({w.pid, mode_of(w.mode), w.ticket});
    out.mode = mode_of(s->mode);
    out.ttl_ms = s->ttl_ms;
    out.grants = s->grants;
    out.waits = s->waits;
    return out;
  }
#ifdef SESSIONBROKER_WITH_ETCD
  auto info = etcd::read_session(*etcd_->client, etcd_->keys, id);
  if (!info) return std::nullopt;
  // The pid of each process lease, from the client keys of every host.
  auto pids = etcd::registered_pids(*etcd_->client, etcd_->keys);
  std::map<std::int64_t, pid_t> pid_of;
  if (pids) pid_of.insert(pids->begin(), pids->end());
  bool any_exclusive_after = false;
  for (auto it = info->queue.rbegin(); it != info->queue.rend(); ++it) {
    const Mode m = it->exclusive ? Mode::kExclusive : Mode::kShared;
    const pid_t pid = pid_of.count(it->lease) ? pid_of[it->lease] : 0;
    if (it->granted) {
      // A holder is asked back by any later incompatible request.
      const bool revoke = it->exclusive ? it != info->queue.rbegin() : any_exclusive_after;
      out.holders.insert(out.holders.begin(), {pid, m, static_cast<std::uint64_t>(it->token), revoke});
      out.mode = m;
    } else {
      out.queue.insert(out.queue.begin(), {pid, m, static_cast<std::uint64_t>(it->token)});
    }
    any_exclusive_after = any_exclusive_after || it->exclusive;
  }
  out.ttl_ms = info->value.ttl_ms;
  return out;
#else
  return std::nullopt;
#endif
}

}  // namespace sbtest
