// The peer of sb_etcd: etcd's own lock service (v3lock Lock/Unlock, the server-side form of
// clientv3/concurrency's Mutex) through the same gRPC client the backend uses (etcd::Client), each
// lock on a lease of its process. Each function runs in a child process of its own.
#include <cstdio>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "etcd/etcd_client.hpp"
#include "etcd/keep_alive.hpp"
#include "etcd/watcher.hpp"
#include "etcd_bench.hpp"

namespace sbetcd {
namespace {

using namespace std::chrono_literals;
namespace etcd = sessionbroker::detail::etcd;

constexpr int kWarmup = 5;
constexpr std::int64_t kLeaseTtl = 2;  // seconds, as the backend's process lease

int fail(const char* what, const sessionbroker::Status& st) {
  std::fprintf(stderr, "sb_etcd (v3lock): %s: %s\n", what, st.to_string().c_str());
  return 1;
}

// A Lock may wait for a holder far longer than a usual call: no failover within a minute.
std::unique_ptr<etcd::Client> connect(const std::vector<std::string>& endpoints) {
  etcd::Options o;
  o.request_timeout = std::chrono::milliseconds(60000);
  o.attempt_timeout = std::chrono::milliseconds(60000);
  auto c = etcd::Client::connect(endpoints, o);
  if (!c) return fail("connect", c.status()), nullptr;
  return std::move(*c);
}

// A process's client and its lease, kept alive as clientv3/concurrency's Session keeps its own.
struct Leased {
  std::unique_ptr<etcd::Client> client;
  std::unique_ptr<etcd::KeepAlive> keep;
  std::int64_t lease = 0;

  static std::optional<Leased> make(const std::vector<std::string>& endpoints, std::int64_t ttl = kLeaseTtl) {
    Leased l;
    l.client = connect(endpoints);
    if (!l.client) return std::nullopt;
    auto g = l.client->grant(ttl);
    if (!g) return fail("grant", g.status()), std::nullopt;
    l.lease = g->id;
    l.keep = std::make_unique<etcd::KeepAlive>(*l.client, [](std::int64_t, const std::string& why) {
      std::fprintf(stderr, "sb_etcd (v3lock): lease lost: %s\n", why.c_str());
    });
    l.keep->add(*g);
    return l;
  }
  int finish() {
    keep->remove(lease);
    return client->revoke(lease) ? 0 : 1;
  }
};

// Put `value` at `key` only while `lock_key` exists: the fenced write v3lock offers (its key is
// unique to the holder's lease, so "exists" is "still mine").
bool fenced_put(etcd::Client& c, const std::string& lock_key, const std::string& key, const std::string& value) {
  etcdserverpb::TxnRequest t;
  auto* cmp = t.add_compare();
  cmp->set_key(lock_key);
  cmp->set_target(etcdserverpb::Compare::CREATE);
  cmp->set_result(etcdserverpb::Compare::GREATER);
  cmp->set_create_revision(0);
  auto* put = t.add_success()->mutable_request_put();
  put->set_key(key);
  put->set_value(value);
  auto r = c.txn(t);
  if (!r) return fail("txn", r.status()), false;
  if (!r->succeeded()) return std::fprintf(stderr, "sb_etcd (v3lock): fenced put refused\n"), false;
  return true;
}

}  // namespace

int v3_lock_unlock(const std::vector<std::string>& endpoints, int n, Samples& out, Turns* turns, int me) {
  Turn turn(turns, me);
  auto l = Leased::make(endpoints);
  if (!l) return 1;
  etcd::Client* c = l->client.get();
  std::string key;
  std::uint64_t cpu0 = 0;
  for (int i = 0; i < kWarmup + n; ++i) {
    if (i == kWarmup) cpu0 = cpu_ns_of(0);
    if (i >= kWarmup) turn.before(i - kWarmup);
    const auto t0 = now_ns();
    if (auto r = c->lock("v3/acquire", l->lease, &key); !r) return fail("lock", r.status());
    if (auto st = c->unlock(key); !st) return fail("unlock", st);
    if (i >= kWarmup) {
      out.add(static_cast<double>(now_ns() - t0), n);
      turn.after(i - kWarmup);
    }
  }
  out.cpu_ns.store((cpu_ns_of(0) - cpu0) / static_cast<std::uint64_t>(n));
  return l->finish();
}

// The floor of sessionbroker's uncontended cycle on etcd: the backend's own two requests (the
// queue txn: the session's generation compared, the request's key put, the session's range read;
// then the release, a plain delete of that key, whose name is the request's alone), in this
// process, with a watch open on the session's range as the backend keeps one, and no agent or
// library around them. The difference to sb_acquire_release is what the agent hop and the library add.
int txn_pair_floor(const std::vector<std::string>& endpoints, int n, FloorWatch watch, Samples& out, Turns* turns,
                   int me) {
  Turn turn(turns, me);
  auto l = Leased::make(endpoints);
  if (!l) return 1;
  etcd::Client* c = l->client.get();
  const std::string session = "floor/s/7" + std::to_string(static_cast<int>(watch));
  auto created = c->put(session, std::string(40, 's'));  // the session key (no lease: the bench's own)
  if (!created) return fail("session put", created.status());
  const std::int64_t generation = created->header().revision();
  etcd::Watcher watcher(*c);
  std::optional<std::int64_t> handle;
  if (watch != FloorWatch::kNone) {
    auto w = watcher.watch(session, session + "0", 0, [](const etcd::Events&, std::int64_t) {}, [](std::int64_t) {},
                           watch == FloorWatch::kDeletes);
    if (!w) return fail("watch", w.status());
    handle = w->handle;
  }
  using etcdserverpb::Compare;
  std::uint64_t cpu0 = 0;
  for (int i = 0; i < kWarmup + n; ++i) {
    if (i == kWarmup) cpu0 = cpu_ns_of(0);
    const std::string key = fmt::format("{}/q/{:016x}.{:x}", session, l->lease, i + 1);
    if (i >= kWarmup) turn.before(i - kWarmup);
    const auto t0 = now_ns();
    etcdserverpb::TxnRequest put;
    auto* same = put.add_compare();
    same->set_key(session);
    same->set_target(Compare::CREATE);
    same->set_create_revision(generation);
    auto* absent = put.add_compare();
    absent->set_key(key);
    absent->set_target(Compare::CREATE);
    absent->set_create_revision(0);
    auto* p = put.add_success()->mutable_request_put();
    p->set_key(key);
    p->set_value("X");
    p->set_lease(l->lease);
    auto* range = put.add_success()->mutable_request_range();
    range->set_key(session);
    range->set_range_end(session + "0");
    auto r = c->txn(put);
    if (!r) return fail("queue txn", r.status());
    if (!r->succeeded()) return std::fprintf(stderr, "sb_etcd (floor): the queue key was there already\n"), 1;
    auto d = c->delete_range(key);
    if (!d) return fail("release", d.status());
    if (d->deleted() != 1) return std::fprintf(stderr, "sb_etcd (floor): the queue key was gone\n"), 1;
    if (i >= kWarmup) {
      out.add(static_cast<double>(now_ns() - t0), n);
      turn.after(i - kWarmup);
    }
  }
  out.cpu_ns.store((cpu_ns_of(0) - cpu0) / static_cast<std::uint64_t>(n));
  if (handle) watcher.cancel(*handle);
  (void)c->delete_range(session);
  return l->finish();
}

int v3_fenced_put(const std::vector<std::string>& endpoints, int n, Samples& out, Turns* turns, int me) {
  Turn turn(turns, me);
  auto l = Leased::make(endpoints);
  if (!l) return 1;
  etcd::Client* c = l->client.get();
  const std::string value(64, 'x');
  std::string key;
  for (int i = 0; i < kWarmup + n; ++i) {
    if (i >= kWarmup) turn.before(i - kWarmup);
    const auto t0 = now_ns();
    if (auto r = c->lock("v3/commit", l->lease, &key); !r) return fail("lock", r.status());
    if (!fenced_put(*c, key, "v3/commit.data", value)) return 1;
    if (auto st = c->unlock(key); !st) return fail("unlock", st);
    if (i >= kWarmup) {
      out.add(static_cast<double>(now_ns() - t0), n);
      turn.after(i - kWarmup);
    }
  }
  return l->finish();
}

// As sb_handoff_player, with "the other has queued" read from the store: the holder polls the
// lock's key range until a second key (the other's) is there. The polling is not timed: the
// sample runs from the stamp just before Unlock to the other's grant.
int v3_handoff_player(const std::vector<std::string>& endpoints, int me, int n, Samples& shared) {
  auto l = Leased::make(endpoints);
  if (!l) return 1;
  etcd::Client* c = l->client.get();
  const std::string name = "v3/handoff";
  const std::string prefix = name + "/";
  etcd::RangeOptions count_only;
  count_only.count_only = true;
  shared.ready.fetch_add(1);
  while (shared.ready.load() < 2) std::this_thread::sleep_for(100us);
  std::string key;
  while (true) {
    if (auto r = c->lock(name, l->lease, &key); !r) return fail("lock", r.status());
    const std::uint64_t granted = now_ns();
    const bool stopping = shared.stop.load(std::memory_order_acquire);
    if (!stopping && shared.last_holder.exchange(me) != me && shared.released_ns.load() != 0)
      shared.add(static_cast<double>(granted - shared.released_ns.load()), n);
    for (const std::uint64_t give_up = granted + 10'000'000'000ull; !shared.stop.load();) {
      auto r = c->range(prefix, etcd::prefix_end(prefix), count_only);
      if (!r) return fail("range", r.status());
      if (r->count() >= 2) break;
      if (now_ns() > give_up) return std::fprintf(stderr, "sb_etcd (v3lock): the other player never queued\n"), 1;
      std::this_thread::sleep_for(50us);
    }
    shared.released_ns.store(now_ns());
    if (auto st = c->unlock(key); !st) return fail("unlock", st);
    if (stopping || shared.stop.load()) break;
  }
  return l->finish();
}

int v3_holder(const std::vector<std::string>& endpoints, const std::string& name, int ttl_s, int held_fd) {
  auto l = Leased::make(endpoints, ttl_s);
  if (!l) return 1;
  std::string key;
  if (auto r = l->client->lock(name, l->lease, &key); !r) return fail("lock", r.status());
  write_byte(held_fd);
  std::this_thread::sleep_for(120s);  // killed long before
  return 1;
}

int v3_waiter(const std::vector<std::string>& endpoints, const std::string& name, int asking_fd, Samples& out) {
  auto l = Leased::make(endpoints);
  if (!l) return 1;
  etcd::Client* c = l->client.get();
  write_byte(asking_fd);
  std::string key;
  if (auto r = c->lock(name, l->lease, &key); !r) return fail("lock (waiter)", r.status());
  out.released_ns.store(now_ns());
  (void)c->unlock(key);
  return l->finish();
}

}  // namespace sbetcd
