// AdminStore over an etcd store: the key space of docs/etcd.md read and written directly, over
// etcd::Client, without attaching (no process lease, no client key, no queue key of its own).
//
// dump         every session by read_session() (one consistent range each) and the pids of
//              registered_pids()'s client keys; a holder's revoke flag is the protocol's revoke
//              request: a newer incompatible key in its queue.
// break-lock   deletes each holder's queue key if its create_revision is still the token read:
//              exactly the release the holder would have made; a newer grant is never touched.
// expire       deletes the session's range if the session key still has the generation read, then
//              revokes the session lease, as destroy does: holders and waiters see their keys go.
// evict-client revokes the process lease: etcd deletes its client key and every queue key at once;
//              the process hears its lease lost (every grant kLost) and the next request takes a new one.
//
// Thread safety: one thread (the tool's). Process safety: as any etcd client; every write is a
// transaction whose compare makes a repeat harmless (etcd_client.hpp).
#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "etcd_store.hpp"

namespace sessionctl::etcdstore {
namespace {

using sessionbroker::ErrorCode;
using sessionbroker::Result;
using sessionbroker::Status;
using etcdserverpb::Compare;
using etcdserverpb::TxnRequest;

// A txn that deletes [key, end) if the create_revision of `compare_key` is `revision`.
TxnRequest delete_if_created_at(const std::string& compare_key, std::int64_t revision, const std::string& key,
                                const std::string& end = {}) {
  TxnRequest t;
  Compare* c = t.add_compare();
  c->set_key(compare_key);
  c->set_target(Compare::CREATE);
  c->set_result(Compare::EQUAL);
  c->set_create_revision(revision);
  auto* d = t.add_success()->mutable_request_delete_range();
  d->set_key(key);
  if (!end.empty()) d->set_range_end(end);
  d->set_prev_kv(true);
  return t;
}

SessionRow to_row(const etcd::SessionInfo& info, const std::map<std::int64_t, std::int32_t>& pids) {
  SessionRow r{.id = info.id, .ttl_ms = info.value.ttl_ms, .ref = {static_cast<std::uint64_t>(info.generation), 0}};
  const auto pid_of = [&](std::int64_t lease) { return pids.count(lease) ? pids.at(lease) : 0; };
  for (auto it = info.queue.begin(); it != info.queue.end(); ++it) {
    const LockMode mode = it->exclusive ? LockMode::kExclusive : LockMode::kShared;
    if (!it->granted) {
      r.queue.push_back({it->lease, pid_of(it->lease), mode});
      continue;
    }
    const bool revoke = std::any_of(std::next(it), info.queue.end(),
                                    [&](const auto& later) { return later.exclusive || it->exclusive; });
    r.holders.push_back({it->lease, pid_of(it->lease), mode, static_cast<std::uint64_t>(it->token), revoke});
    r.mode = mode;
  }
  for (const auto& [name, value] : info.value.attrs) r.attrs.push_back({name, value.size()});
  return r;
}

class EtcdStore final : public AdminStore {
 public:
  EtcdStore(std::string address, etcd::Keys keys, std::unique_ptr<etcd::Client> client)
      : address_(std::move(address)), keys_(std::move(keys)), client_(std::move(client)) {}

  Result<DumpModel> dump() override {
    etcd::RangeOptions o;
    o.keys_only = true;
    auto r = client_->range(keys_.sessions(), etcd::prefix_end(keys_.sessions()), o);
    if (!r) return r.status();
    auto pids = etcd::registered_pids(*client_, keys_);
    if (!pids) return pids.status();
    DumpModel m{.store = address_, .etcd = true};
    m.next_token = static_cast<std::uint64_t>(r->header().revision()) + 1;
    for (const auto& kv : r->kvs()) {
      auto id = keys_.id_of(kv.key());
      if (!id) continue;  // a queue key
      auto info = etcd::read_session(*client_, keys_, *id);
      if (!info && info.code() == ErrorCode::kNotFound) continue;  // gone since the listing
      if (!info) return info.status();
      m.sessions.push_back(to_row(*info, *pids));
    }
    auto clients = read_clients(*client_, keys_);
    if (!clients) return clients.status();
    m.clients = std::move(*clients);
    return m;
  }

  Result<SessionRow> session(const std::string& id) override {
    auto info = etcd::read_session(*client_, keys_, id);
    if (!info) return info.status();
    auto pids = etcd::registered_pids(*client_, keys_);
    if (!pids) return pids.status();
    return to_row(*info, *pids);
  }

  Result<std::vector<ClientRow>> clients_of(pid_t pid) override {
    auto all = read_clients(*client_, keys_);
    if (!all) return all.status();
    std::vector<ClientRow> out;
    std::copy_if(all->begin(), all->end(), std::back_inserter(out), [pid](const ClientRow& c) { return c.pid == pid; });
    return out;
  }

  Result<std::vector<std::uint64_t>> break_locks(const SessionRow& s) override {
    const std::string skey = keys_.session(s.id);
    // A queue key's name carries its request's number, which the row does not: find each holder's
    // key by its token (its create_revision).
    const std::string qp = etcd::Keys::queue_prefix(skey);
    auto queue = client_->range(qp, etcd::prefix_end(qp));
    if (!queue) return queue.status();
    std::vector<std::uint64_t> broken;
    for (const auto& h : s.holders) {
      const auto kv = std::find_if(queue->kvs().begin(), queue->kvs().end(), [&](const mvccpb::KeyValue& k) {
        return static_cast<std::uint64_t>(k.create_revision()) == h.token;
      });
      if (kv == queue->kvs().end()) continue;  // released or broken since `s` was read
      const std::string& qkey = kv->key();
      auto r = client_->txn(delete_if_created_at(qkey, static_cast<std::int64_t>(h.token), qkey));
      if (!r) return r.status();
      if (r->succeeded()) broken.push_back(h.token);
    }
    return broken;
  }

  Status expire(const SessionRow& s) override {
    const std::string skey = keys_.session(s.id);
    auto r = client_->txn(delete_if_created_at(skey, static_cast<std::int64_t>(s.ref.a), skey,
                                               etcd::Keys::session_range_end(skey)));
    if (!r) return r.status();
    if (!r->succeeded()) return Status(ErrorCode::kNotFound, fmt::format("no session '{}' any more", s.id));
    for (const auto& kv : r->responses(0).response_delete_range().prev_kvs())
      if (kv.key() == skey && kv.lease() != 0) (void)client_->revoke(kv.lease());  // nothing is attached to it now
    return {};
  }

  Result<std::size_t> evict(const ClientRow& c) override {
    auto ttl = client_->time_to_live(c.id, /*keys=*/true);
    if (!ttl) return ttl.status();
    if (ttl->ttl() <= 0) return Status(ErrorCode::kNotFound, fmt::format("lease {} of pid {} has ended", c.id, c.pid));
    const std::size_t queued = static_cast<std::size_t>(
        std::count_if(ttl->keys().begin(), ttl->keys().end(),
                      [&](const std::string& k) { return parse_key(keys_, k).kind == KeyParts::kQueue; }));
    if (Status st = client_->revoke(c.id); !st) return st;
    return queued;
  }

  Result<CheckOutput> check() override { return check_store(*client_, keys_, address_); }

 private:
  const std::string address_;
  const etcd::Keys keys_;
  const std::unique_ptr<etcd::Client> client_;
};

}  // namespace

KeyParts parse_key(const etcd::Keys& keys, std::string_view key) {
  KeyParts p;
  const auto lease_of = [](std::string_view name) -> std::optional<std::int64_t> {
    if (name.size() != 16 || name.find_first_not_of("0123456789abcdef") != std::string_view::npos) return std::nullopt;
    return static_cast<std::int64_t>(std::stoull(std::string(name), nullptr, 16));
  };
  const std::string clients = keys.prefix + "/c/";
  if (key.starts_with(clients)) {
    std::string_view rest = key.substr(clients.size());
    const auto slash = rest.find('/');
    if (slash == 0 || slash == std::string_view::npos) return p;
    auto lease = lease_of(rest.substr(slash + 1));
    if (!lease) return p;
    return {KeyParts::kClient, std::string(rest.substr(0, slash)), {}, {}, *lease};
  }
  const std::string sessions = keys.sessions();
  if (!key.starts_with(sessions)) return p;
  const auto slash = key.find('/', sessions.size());
  const std::string skey(key.substr(0, slash));
  auto id = keys.id_of(skey);
  if (!id || id->empty()) return p;
  if (slash == std::string_view::npos) return {KeyParts::kSession, {}, *id, skey, 0};
  const std::string qp = etcd::Keys::queue_prefix(skey);
  if (!key.starts_with(qp)) return p;
  // <lease>.<request number, hex> (Keys::queue)
  const std::string_view name = key.substr(qp.size());
  const std::string_view number = name.size() > 17 ? name.substr(17) : std::string_view{};
  if (name.size() <= 17 || name[16] != '.' || number.find_first_not_of("0123456789abcdef") != std::string_view::npos)
    return p;
  auto lease = lease_of(name.substr(0, 16));
  if (!lease) return p;
  return {KeyParts::kQueue, {}, *id, skey, *lease};
}

std::optional<std::int32_t> parse_pid(std::string_view value) {
  const auto space = value.find(' ');
  if (space == 0 || space == std::string_view::npos || space > 9) return std::nullopt;
  std::int32_t pid = 0;
  for (char c : value.substr(0, space)) {
    if (c < '0' || c > '9') return std::nullopt;
    pid = pid * 10 + (c - '0');
  }
  const std::string_view start = value.substr(space + 1);
  if (start.empty() || start.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
  return pid > 0 ? std::optional(pid) : std::nullopt;
}

Result<std::vector<ClientRow>> read_clients(etcd::Client& client, const etcd::Keys& keys) {
  const std::string p = keys.prefix + "/c/";
  auto r = client.range(p, etcd::prefix_end(p));
  if (!r) return r.status();
  std::vector<ClientRow> rows;
  for (const auto& kv : r->kvs()) {
    const KeyParts k = parse_key(keys, kv.key());
    rows.push_back({.id = kv.lease(), .host = k.host, .pid = parse_pid(kv.value()).value_or(0),
                    .state = ClientState::kLive});
  }
  return rows;
}

}  // namespace sessionctl::etcdstore

namespace sessionctl {

sessionbroker::Result<std::unique_ptr<AdminStore>> make_etcd_store(const std::string& address) {
  namespace etcd = sessionbroker::detail::etcd;
  auto parsed = etcd::parse_address(address);
  if (!parsed) return parsed.status();
  auto client = etcd::Client::connect(parsed->endpoints);
  if (!client) return client.status();
  return std::unique_ptr<AdminStore>(
      std::make_unique<etcdstore::EtcdStore>(address, etcd::Keys{parsed->prefix}, std::move(*client)));
}

}  // namespace sessionctl
