// check on an etcd store: the invariants of docs/etcd.md "Invariants" (E1-E7), verified on one
// consistent read of the whole key space (one range at one revision) while clients keep working.
//
// Only E6 (live leases) needs more than that read: a lease is asked for by id after the read, so
// one that ended in between (a process detached) looks dead. Since etcd deletes a lease's keys in
// the same step as the lease, a dead lease is reported only if a fresh read still finds a key on it.
#include <map>
#include <set>

#include <fmt/format.h>

#include "etcd_store.hpp"

namespace sessionctl::etcdstore {
namespace {

using sessionbroker::Result;

constexpr const char* kE1 = "E1 every key is a client, session or queue key";
constexpr const char* kE2 = "E2 a session key holds a session value and carries a lease";
constexpr const char* kE3 = "E3 a queue key holds S or X";
constexpr const char* kE4 = "E4 a queue key carries the process lease its name says";
constexpr const char* kE5 = "E5 a client key carries the lease its name says and holds 'pid start_time'; every "
                            "queue key's lease has a client key";
constexpr const char* kE6 = "E6 every lease a key carries is live";
constexpr const char* kE7 = "E7 no queue key is older than its session key";

struct Scan {
  std::int64_t revision = 0;
  std::size_t sessions = 0, clients = 0, queued = 0;
  std::map<std::string, std::int64_t> generation;  // session key -> create_revision
  std::set<std::int64_t> client_leases, leases;
  struct Queued {
    std::string key, session_key, id;
    std::int64_t token, lease;
  };
  std::vector<Queued> queue;
};

void scan_key(const etcd::Keys& keys, const mvccpb::KeyValue& kv, Scan& s, CheckOutput& out) {
  const auto violate = [&](const char* inv, std::string detail) { out.violations.push_back({inv, std::move(detail)}); };
  const KeyParts k = parse_key(keys, kv.key());
  if (kv.lease() != 0) s.leases.insert(kv.lease());
  switch (k.kind) {
    case KeyParts::kOther:
      violate(kE1, fmt::format("key '{}' is not of the layout", kv.key()));
      return;
    case KeyParts::kClient:
      ++s.clients;
      s.client_leases.insert(kv.lease());
      if (kv.lease() != k.lease)
        violate(kE5, fmt::format("client key '{}' carries lease {:x}", kv.key(), kv.lease()));
      if (!parse_pid(kv.value())) violate(kE5, fmt::format("client key '{}' holds '{}'", kv.key(), kv.value()));
      return;
    case KeyParts::kSession:
      ++s.sessions;
      s.generation[k.session_key] = kv.create_revision();
      if (auto v = etcd::SessionValue::decode(kv.value()); !v)
        violate(kE2, fmt::format("session '{}': {}", k.id, v.status().message()));
      if (kv.lease() == 0) violate(kE2, fmt::format("session '{}' carries no lease: it never expires", k.id));
      return;
    case KeyParts::kQueue:
      ++s.queued;
      if (kv.value() != "S" && kv.value() != "X")
        violate(kE3, fmt::format("queue key '{}' of session '{}' holds '{}'", kv.key(), k.id, kv.value()));
      if (kv.lease() != k.lease)
        violate(kE4, fmt::format("queue key '{}' of session '{}' carries lease {:x}", kv.key(), k.id, kv.lease()));
      s.queue.push_back({kv.key(), k.session_key, k.id, kv.create_revision(), kv.lease()});
      return;
  }
}

// E5's second half and E7: each queue key against the client keys and its session key.
void check_queue(const Scan& s, CheckOutput& out) {
  for (const auto& q : s.queue) {
    if (q.lease != 0 && !s.client_leases.count(q.lease))
      out.violations.push_back({kE5, fmt::format("queue key '{}' of session '{}' (token {}): lease {:x} has no client key",
                                                 q.key, q.id, q.token, q.lease)});
    auto g = s.generation.find(q.session_key);
    if (g == s.generation.end())
      out.notes.push_back(fmt::format("session '{}' expired under queue key '{}' (token {}): left over until its "
                                      "process releases it or its lease ends (E7)", q.id, q.key, q.token));
    else if (q.token < g->second)
      out.violations.push_back({kE7, fmt::format("queue key '{}' (token {}) is older than session '{}' (generation {}): "
                                                 "creating a session deletes its queue", q.key, q.token, q.id, g->second)});
  }
}

// E6: leases asked one by one; a dead one is confirmed on a fresh read (header comment).
Result<std::size_t> check_leases(etcd::Client& client, const std::string& prefix, const Scan& s, CheckOutput& out) {
  std::set<std::int64_t> dead;
  for (std::int64_t lease : s.leases) {
    auto ttl = client.time_to_live(lease);
    if (!ttl && ttl.code() != sessionbroker::ErrorCode::kNotFound) return ttl.status();
    if (!ttl || ttl->ttl() < 0) dead.insert(lease);
  }
  if (dead.empty()) return s.leases.size();
  auto again = client.range(prefix, etcd::prefix_end(prefix));
  if (!again) return again.status();
  for (const auto& kv : again->kvs())
    if (dead.count(kv.lease()))
      out.violations.push_back({kE6, fmt::format("key '{}' carries lease {:x}, which has ended", kv.key(), kv.lease())});
  return s.leases.size();
}

}  // namespace

Result<CheckOutput> check_store(etcd::Client& client, const etcd::Keys& keys, const std::string& address) {
  const std::string prefix = keys.prefix + "/";
  auto r = client.range(prefix, etcd::prefix_end(prefix));
  if (!r) return r.status();
  Scan s;
  s.revision = r->header().revision();
  CheckOutput out;
  for (const auto& kv : r->kvs()) scan_key(keys, kv, s, out);
  check_queue(s, out);
  auto leases = check_leases(client, prefix, s, out);
  if (!leases) return leases.status();
  out.summary = fmt::format("store {} at revision {}: {} sessions, {} clients, {} queue keys, {} leases", address,
                            s.revision, s.sessions, s.clients, s.queued, *leases);
  return out;
}

}  // namespace sessionctl::etcdstore
