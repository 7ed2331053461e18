#include "etcd/etcd_backend.hpp"

#include <unistd.h>

#include <cstring>
#include <fstream>

#include <fmt/format.h>

#include "fork_guard.hpp"
#include "liveness.hpp"
#include "test_point.hpp"
#include "sessionbroker/shm/futex.hpp"

namespace sessionbroker::detail::etcd {
namespace {

using etcdserverpb::Compare;
using etcdserverpb::TxnRequest;
using etcdserverpb::TxnResponse;

constexpr char kHex[] = "0123456789abcdef";

std::string hex(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

std::optional<std::string> unhex(std::string_view h) {
  if (h.size() % 2 != 0) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string out;
  out.reserve(h.size() / 2);
  for (std::size_t i = 0; i < h.size(); i += 2) {
    const int hi = nibble(h[i]), lo = nibble(h[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi << 4 | lo);
  }
  return out;
}

std::string lease_name(std::int64_t lease) { return fmt::format("{:016x}", static_cast<std::uint64_t>(lease)); }

// ---- txn building ----
void cmp_create(TxnRequest& t, const std::string& key, std::int64_t rev, Compare::CompareResult r = Compare::EQUAL) {
  Compare* c = t.add_compare();
  c->set_key(key);
  c->set_target(Compare::CREATE);
  c->set_result(r);
  c->set_create_revision(rev);
}
void cmp_mod(TxnRequest& t, const std::string& key, std::int64_t rev) {
  Compare* c = t.add_compare();
  c->set_key(key);
  c->set_target(Compare::MOD);
  c->set_result(Compare::EQUAL);
  c->set_mod_revision(rev);
}
etcdserverpb::RangeRequest* add_range(google::protobuf::RepeatedPtrField<etcdserverpb::RequestOp>* ops,
                                      const std::string& key, const std::string& end = {}) {
  auto* r = ops->Add()->mutable_request_range();
  r->set_key(key);
  if (!end.empty()) r->set_range_end(end);
  return r;
}
void add_put(google::protobuf::RepeatedPtrField<etcdserverpb::RequestOp>* ops, const std::string& key,
             std::string value, std::int64_t lease) {
  auto* p = ops->Add()->mutable_request_put();
  p->set_key(key);
  p->set_value(std::move(value));
  p->set_lease(lease);
}
void add_delete(google::protobuf::RepeatedPtrField<etcdserverpb::RequestOp>* ops, const std::string& key,
                const std::string& end = {}) {
  auto* d = ops->Add()->mutable_request_delete_range();
  d->set_key(key);
  if (!end.empty()) d->set_range_end(end);
}

Status stale(std::string_view id) {
  return Status(ErrorCode::kStaleToken, fmt::format("session '{}': the lock was lost (its queue key is gone)", id));
}
Status gone(bool forked) {
  return Status(ErrorCode::kDetached, forked ? "client handle used in a forked child: call Client::attach in the child"
                                             : "client is detached");
}
Status check_id(std::string_view id) {
  if (id.empty()) return Status(ErrorCode::kInvalidArgument, "session id is empty");
  if (id.size() > kMaxSessionIdBytes)
    return Status(ErrorCode::kTooLarge, fmt::format("session id is {} bytes; the limit is {}", id.size(), kMaxSessionIdBytes));
  return {};
}
std::int64_t ttl_seconds(std::uint64_t ttl_ms) {
  const std::uint64_t ms = ttl_ms == 0 ? kDefaultSessionTtlMs : ttl_ms;
  const std::uint64_t s = ms / 1000 + (ms % 1000 != 0);
  return static_cast<std::int64_t>(std::min<std::uint64_t>(s, INT64_MAX / 2));
}

void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out += static_cast<char>(v >> (8 * i));
}
void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out += static_cast<char>(v >> (8 * i));
}
template <class T>
bool get_int(std::string_view& in, T& v) {
  if (in.size() < sizeof(T)) return false;
  v = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(static_cast<unsigned char>(in[i])) << (8 * i);
  in.remove_prefix(sizeof(T));
  return true;
}

// Renews a lease once (LeaseKeepAlive is a stream; one request, one answer). kNotFound if gone.
Status renew_once(Client& client, std::int64_t lease) {
  Status last(ErrorCode::kUnavailable, "no etcd member answered");
  for (std::size_t n = 0; n < client.endpoint_count(); ++n) {
    const std::size_t i = (client.preferred() + n) % client.endpoint_count();
    grpc::ClientContext ctx;
    Client::prepare_stream_context(ctx);
    ctx.set_deadline(std::chrono::system_clock::now() + client.options().attempt_timeout);
    auto stream = client.endpoint(i).lease->LeaseKeepAlive(&ctx);
    etcdserverpb::LeaseKeepAliveRequest req;
    req.set_id(lease);
    etcdserverpb::LeaseKeepAliveResponse resp;
    const bool ok = stream->Write(req) && stream->Read(&resp);
    stream->WritesDone();
    ctx.TryCancel();
    (void)stream->Finish();
    if (ok) return resp.ttl() > 0 ? Status{} : Status(ErrorCode::kNotFound, "lease expired");
  }
  return last;
}

}  // namespace

// ---- keys and values ----

std::string Keys::client(std::string_view host, std::int64_t lease) const {
  return clients_of(host) + lease_name(lease);
}
std::string Keys::clients_of(std::string_view host) const { return fmt::format("{}/c/{}/", prefix, host); }
std::string Keys::session(std::string_view id) const { return sessions() + hex(id); }
std::string Keys::queue(const std::string& session_key, std::int64_t lease, std::uint64_t request) {
  return fmt::format("{}{}.{:x}", queue_prefix(session_key), lease_name(lease), request);
}
std::optional<std::string> Keys::id_of(std::string_view key) const {
  const std::string p = sessions();
  if (key.substr(0, p.size()) != p) return std::nullopt;
  key.remove_prefix(p.size());
  if (key.find('/') != std::string_view::npos) return std::nullopt;
  return unhex(key);
}

std::string SessionValue::encode() const {
  std::string out = "SB1";
  put_u64(out, ttl_ms);
  put_u32(out, static_cast<std::uint32_t>(attrs.size()));
  for (const auto& [name, value] : attrs) {
    put_u32(out, static_cast<std::uint32_t>(name.size()));
    out += name;
    put_u32(out, static_cast<std::uint32_t>(value.size()));
    out += value;
  }
  return out;
}

Result<SessionValue> SessionValue::decode(std::string_view in) {
  const Status bad(ErrorCode::kCorrupt, "session value is not in sessionbroker's format");
  if (in.substr(0, 3) != "SB1") return bad;
  in.remove_prefix(3);
  SessionValue v;
  std::uint32_t n = 0;
  if (!get_int(in, v.ttl_ms) || !get_int(in, n)) return bad;
  for (std::uint32_t i = 0; i < n; ++i) {
    std::uint32_t len = 0;
    if (!get_int(in, len) || len > in.size() || len == 0 || len > kMaxAttrNameBytes) return bad;
    std::string name(in.substr(0, len));
    in.remove_prefix(len);
    if (!get_int(in, len) || len > in.size()) return bad;
    v.attrs.emplace(std::move(name), std::string(in.substr(0, len)));
    in.remove_prefix(len);
  }
  if (!in.empty()) return bad;
  return v;
}

Result<SessionInfo> read_session(Client& client, const Keys& keys, std::string_view id) {
  const std::string skey = keys.session(id);
  auto r = client.range(skey, Keys::session_range_end(skey));
  if (!r) return r.status();
  SessionInfo info;
  info.id = std::string(id);
  const std::string qp = Keys::queue_prefix(skey);
  bool blocked = false;  // an earlier entry is exclusive, or an earlier one is not granted
  for (const auto& kv : r->kvs()) {
    if (kv.key() == skey) {
      info.generation = kv.create_revision();
      auto v = SessionValue::decode(kv.value());
      if (!v) return v.status();
      info.value = std::move(*v);
    }
  }
  if (info.generation == 0) return Status(ErrorCode::kNotFound, fmt::format("no session '{}'", id));
  std::vector<SessionInfo::Entry> q;
  for (const auto& kv : r->kvs())
    if (kv.key().starts_with(qp)) q.push_back({kv.create_revision(), kv.value() == "X", kv.lease(), false});
  std::sort(q.begin(), q.end(), [](auto& a, auto& b) { return a.token < b.token; });
  for (auto& e : q) {
    e.granted = !blocked && (!e.exclusive || &e == &q.front());
    if (e.exclusive || !e.granted) blocked = true;
  }
  info.queue = std::move(q);
  return info;
}

Result<std::map<std::int64_t, std::int32_t>> registered_pids(Client& client, const Keys& keys) {
  const std::string p = keys.prefix + "/c/";
  auto r = client.range(p, prefix_end(p));
  if (!r) return r.status();
  std::map<std::int64_t, std::int32_t> out;
  for (const auto& kv : r->kvs()) {
    std::int32_t pid = 0;
    const std::string& v = kv.value();
    for (std::size_t i = 0; i < v.size() && v[i] >= '0' && v[i] <= '9'; ++i) pid = pid * 10 + (v[i] - '0');
    out[kv.lease()] = pid;
  }
  return out;
}

// ---- the process's view of one session ----

// Everything this process knows of one session: its queue as the watch reported it (valid once
// synced) and this process's own request or grant on it. At most one request per session at a
// time (LocalSession serialises them). All fields under mu.
struct EtcdBackend::SessionView {
  SessionView(std::string id_, std::string key_, std::int64_t generation_)
      : id(std::move(id_)), key(std::move(key_)), generation(generation_) {}
  const std::string id;
  const std::string key;  // the session key
  const std::int64_t generation;
  std::int64_t lease = 0;  // the session lease, as last read or reported
  // The session lease while this process holds a grant on the session: its KeepAlive renews it,
  // so a held session never expires (as on shared memory, where the broker expires idle sessions
  // only); the idle clock starts again at release. 0 when not kept.
  std::int64_t kept_lease = 0;
  struct Renewed {
    std::int64_t lease = 0;
    Clock::time_point alive_until;  // as the keep-alive knew it when it stopped renewing
  } renewed;

  std::mutex mu;
  std::condition_variable cv;
  std::int64_t watch = -1;  // Watcher handle while a request or grant needs it
  bool synced = false;      // `queue` is the store's at `applied`
  std::int64_t applied = 0;
  std::vector<mvccpb::Event> early;  // events that came before the first read
  struct Entry {
    std::string key;
    bool exclusive;
  };
  std::map<std::int64_t, Entry> queue;  // by create_revision
  bool session_gone = false;
  // The session key as last read or reported by the watch. Only a hint: a commit writes on it with
  // a compare of its mod_revision (one round trip, not a read first), and reads again when the
  // compare fails. Reads never use it (they must prove the grant at the store).
  struct Value {
    std::int64_t mod_revision = 0;
    std::int64_t lease = 0;
    std::string bytes;
  };
  std::optional<Value> value;
  // The value, if `g` is still this view's grant (nothing is asked of etcd).
  std::optional<Value> value_under(const Grant& g) {
    std::lock_guard lk(mu);
    if (token != static_cast<std::int64_t>(g.token) || !granted) return std::nullopt;
    return value;
  }
  void remember(const mvccpb::KeyValue& kv) {
    if (value && value->mod_revision >= kv.mod_revision()) return;
    value = Value{kv.mod_revision(), kv.lease(), kv.value()};
    lease = kv.lease();
  }
  // The session lease's TTL as the value says (whole seconds); 1 s when unknown (renewed often).
  std::int64_t lease_ttl_seconds() const {
    if (!value) return 1;
    auto v = SessionValue::decode(value->bytes);
    return v ? ttl_seconds(v->ttl_ms) : 1;
  }

  // This process's request: its queue key and token while queued or granted (token 0: none).
  std::string my_key;
  std::int64_t my_lease = 0;  // the process lease my_key is on
  std::int64_t token = 0;
  bool exclusive = false;
  bool granted = false;
  bool lost = false;   // the key went away before a grant
  std::uint32_t slot = 0;
  GrantSlot* words = nullptr;

  void apply(const mvccpb::Event& e) {
    const auto& kv = e.kv();
    if (kv.mod_revision() <= applied) return;
    applied = kv.mod_revision();
    if (kv.key() == key) {
      if (e.type() == mvccpb::Event::DELETE || kv.create_revision() != generation) {
        session_gone = true;
        value.reset();
      } else {
        remember(kv);
      }
      return;
    }
    if (e.type() == mvccpb::Event::DELETE) {
      for (auto it = queue.begin(); it != queue.end(); ++it)
        if (it->second.key == kv.key()) {
          queue.erase(it);
          break;
        }
    } else if (kv.create_revision() == kv.mod_revision()) {
      queue[kv.create_revision()] = Entry{kv.key(), kv.value() == "X"};
    }
  }
  void install(const etcdserverpb::RangeResponse& r, std::int64_t revision) {
    queue.clear();
    session_gone = true;
    value.reset();
    for (const auto& kv : r.kvs()) {
      if (kv.key() == key) {
        session_gone = kv.create_revision() != generation;
        if (!session_gone) remember(kv);
      } else {
        queue[kv.create_revision()] = Entry{kv.key(), kv.value() == "X"};
      }
    }
    applied = revision;
    synced = true;
    for (const auto& e : early) apply(e);
    early.clear();
  }
  // Grants, revoke requests and losses, from the queue as it stands. Returns true when the
  // process's revoke thread must look (a revoke request or a loss of a grant). A grant made here
  // is checked for a request behind it at once: that request may be in the view already, and then
  // no later event would raise it (the grant would stay cached with the next in line waiting).
  bool evaluate() {
    if (!synced || token == 0) return false;
    auto mine = queue.find(token);
    if (mine == queue.end() || session_gone) {
      if (granted) {
        if (std::atomic_ref<std::uint32_t>(words->state).load() != kGrantHeldWord) return false;
        std::atomic_ref<std::uint32_t>(words->state).store(0, std::memory_order_release);
        return true;
      }
      lost = true;
      cv.notify_all();
      return false;
    }
    if (!granted) {
      for (auto it = queue.begin(); it != mine; ++it)
        if (exclusive || it->second.exclusive) return false;
      granted = true;
      std::atomic_ref<std::uint32_t>(words->revoke).store(0, std::memory_order_relaxed);
      std::atomic_ref<std::uint32_t>(words->state).store(kGrantHeldWord, std::memory_order_release);
      cv.notify_all();
    }
    if (std::atomic_ref<std::uint32_t>(words->revoke).load() != 0) return false;
    for (auto it = std::next(mine); it != queue.end(); ++it)
      if (exclusive || it->second.exclusive) {
        std::atomic_ref<std::uint32_t>(words->revoke).store(1, std::memory_order_release);
        return true;
      }
    return false;
  }
};

// ---- attach, detach ----

Result<std::unique_ptr<EtcdBackend>> EtcdBackend::attach(const std::string& address, SharedWords* words,
                                                         pid_t owner) {
  auto a = parse_address(address);
  if (!a) return a.status();
  auto client = Client::connect(a->endpoints);
  if (!client) return client.status();
  std::unique_ptr<EtcdBackend> b(new EtcdBackend(std::move(*a), std::move(*client), words, owner != 0 ? owner : ::getpid()));
  if (auto lease = b->process_lease(); !lease) {
    return Status(lease.code(), fmt::format("attach to '{}': {}", address, lease.status().message()));
  }
  return b;
}

namespace {
std::string host_id() {
  if (const char* h = std::getenv("SESSIONBROKER_HOST_ID"); h != nullptr && *h != '\0') return h;
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}
}  // namespace

EtcdBackend::EtcdBackend(Address address, std::unique_ptr<Client> client, SharedWords* words, pid_t owner)
    : address_(std::move(address)),
      keys_{address_.prefix},
      host_(host_id()),
      owner_(owner),
      fork_epoch_(fork_epoch()),
      client_(std::move(client)),
      own_words_(words ? nullptr : std::make_unique<SharedWords>()),
      words_(words ? words : own_words_.get()),
      slots_(words_->slots) {
  for (std::uint32_t i = kGrantSlots; i-- > 0;) free_slots_.push_back(i);
  keep_alive_ = std::make_unique<KeepAlive>(*client_, [this](std::int64_t lease, const std::string& why) {
    on_lease_lost(lease, why);
  });
  watcher_ = std::make_unique<Watcher>(*client_);
}

EtcdBackend::~EtcdBackend() {
  if (forked()) {
    // The parent's threads do not exist here: destroying their objects could wait for them forever.
    (void)keep_alive_.release();
    (void)watcher_.release();
    (void)client_.release();
    return;
  }
  (void)detach();
}

bool EtcdBackend::forked() const { return forked_since(fork_epoch_); }

template <class F>
auto EtcdBackend::call(F&& f) -> decltype(f()) {
  if (forked()) return gone(true);
  CallGate::Pass pass(gate_);
  if (!pass.entered()) return gone(false);
  return f();
}

void EtcdBackend::close() {
  if (forked()) return;
  if (gate_.close()) {
    cancelled_.store(true, std::memory_order_release);
    std::vector<std::shared_ptr<SessionView>> views;
    {
      std::lock_guard lk(views_mu_);
      views = views_;
    }
    for (auto& v : views) {
      std::lock_guard lk(v->mu);
      v->cv.notify_all();
    }
  }
  gate_.drain();
}

Status EtcdBackend::detach() {
  if (forked()) return {};
  close();
  if (detached_.exchange(true)) return {};
  std::int64_t lease = 0;
  {
    std::lock_guard lk(lease_mu_);
    lease = std::exchange(lease_, 0);
  }
  if (lease != 0) keep_alive_->remove(lease);
  watcher_.reset();
  // Revoking the lease deletes every queue key and the registration at once: waiters behind this
  // process are granted without waiting for the TTL.
  if (lease != 0) {
    if (Status st = client_->revoke(lease); !st && st.code() != ErrorCode::kNotFound) return st;
  }
  return {};
}

std::int64_t EtcdBackend::lease_id() const {
  std::lock_guard lk(const_cast<std::mutex&>(lease_mu_));
  return lease_;
}

Result<std::int64_t> EtcdBackend::process_lease() {
  std::lock_guard lk(lease_mu_);
  if (lease_ != 0) return lease_;
  auto lease = client_->grant(kProcessLeaseTtlSeconds);
  if (!lease) return lease.status();
  const std::string value = fmt::format("{} {}", owner_, process_start_time(owner_).value_or(0));
  auto put = client_->put(keys_.client(host_, lease->id), value, lease->id);
  if (!put) {
    (void)client_->revoke(lease->id);
    return put.status();
  }
  keep_alive_->add(*lease);
  lease_ = lease->id;
  return lease_;
}

// The process lease expired or was revoked (a broker saw the process as dead, an administrator
// evicted it, or the cluster was unreachable past the TTL): every queue key of the process is gone,
// so every grant is lost and every queued request is void. The next request grants a new lease.
void EtcdBackend::on_lease_lost(std::int64_t lease, const std::string&) {
  {
    std::lock_guard lk(lease_mu_);
    // A session lease kept while granted that ended (expired before we kept it, or the session
    // was destroyed): the watch reports the session key's DELETE, which is what ends the grant.
    if (lease_ != lease) return;
    lease_ = 0;
  }
  std::vector<std::shared_ptr<SessionView>> views;
  {
    std::lock_guard lk(views_mu_);
    views = views_;
  }
  for (auto& v : views) {
    std::lock_guard lk(v->mu);
    if (v->token == 0 || v->my_lease != lease) continue;
    if (v->granted) {
      std::atomic_ref<std::uint32_t>(v->words->state).store(0, std::memory_order_release);
    } else {
      v->lost = true;
      v->cv.notify_all();
    }
  }
  notify();
}

// ---- sessions ----

Result<SessionHandle> EtcdBackend::handle_for(std::string_view id, std::int64_t generation, std::int64_t lease) {
  std::lock_guard lk(views_mu_);
  auto it = view_of_id_.find(id);
  if (it != view_of_id_.end() && views_[it->second]->generation == generation) {
    views_[it->second]->lease = lease;
    return SessionHandle{it->second, static_cast<std::uint64_t>(generation)};
  }
  auto v = std::make_shared<SessionView>(std::string(id), keys_.session(id), generation);
  v->lease = lease;
  const std::uint64_t index = views_.size();
  views_.push_back(std::move(v));
  view_of_id_.insert_or_assign(std::string(id), index);
  return SessionHandle{index, static_cast<std::uint64_t>(generation)};
}

Result<std::shared_ptr<EtcdBackend::SessionView>> EtcdBackend::view(SessionHandle s) {
  std::lock_guard lk(views_mu_);
  if (s.key >= views_.size() || views_[s.key]->generation != static_cast<std::int64_t>(s.generation))
    return Status(ErrorCode::kInvalidArgument, "bad session handle");
  return views_[s.key];
}

Result<SessionHandle> EtcdBackend::create_session(std::string_view id, std::uint64_t ttl_ms) {
  if (Status st = check_id(id); !st) return st;
  return call([&]() -> Result<SessionHandle> {
    auto lease = client_->grant(ttl_seconds(ttl_ms));
    if (!lease) return lease.status();
    const std::string skey = keys_.session(id);
    TxnRequest t;
    cmp_create(t, skey, 0);
    add_put(t.mutable_success(), skey, SessionValue{ttl_ms, {}}.encode(), lease->id);
    // Queue keys left by an earlier session of this id that expired (E7) go in the same step: a
    // new session starts with an empty queue. None can be added after: an old request's txn
    // compares the old generation.
    const std::string qp = Keys::queue_prefix(skey);
    add_delete(t.mutable_success(), qp, prefix_end(qp));
    auto r = client_->txn(t);
    if (!r || !r->succeeded()) {
      (void)client_->revoke(lease->id);
      if (!r) return r.status();
      return Status(ErrorCode::kAlreadyExists, fmt::format("session '{}' exists", id));
    }
    return handle_for(id, r->header().revision(), lease->id);
  });
}

Result<SessionHandle> EtcdBackend::open_session(std::string_view id) {
  if (Status st = check_id(id); !st) return st;
  return call([&]() -> Result<SessionHandle> {
    auto r = client_->range(keys_.session(id));
    if (!r) return r.status();
    if (r->kvs_size() == 0) return Status(ErrorCode::kNotFound, fmt::format("no session '{}'", id));
    return handle_for(id, r->kvs(0).create_revision(), r->kvs(0).lease());
  });
}

Result<SessionHandle> EtcdBackend::open_or_create_session(std::string_view id, std::uint64_t ttl_ms, bool& created) {
  created = false;
  for (;;) {
    auto h = open_session(id);
    if (h || h.code() != ErrorCode::kNotFound) return h;
    h = create_session(id, ttl_ms);
    if (h) created = true;
    if (h || h.code() != ErrorCode::kAlreadyExists) return h;
  }
}

Status EtcdBackend::destroy_session(SessionHandle s, const Grant* own) {
  auto v = view(s);
  if (!v) return v.status();
  return call([&]() -> Status {
    SessionView& sv = **v;
    TxnRequest t;
    cmp_create(t, sv.key, sv.generation);
    std::string my_key;
    if (own) {
      std::lock_guard lk(sv.mu);
      if (sv.token != static_cast<std::int64_t>(own->token)) return stale(sv.id);
      my_key = sv.my_key;
      cmp_create(t, my_key, sv.token);
    }
    add_delete(t.mutable_success(), sv.key, Keys::session_range_end(sv.key));
    auto r = client_->txn(t);
    if (!r) return r.status();
    if (own) finish_request(*v);
    if (r->succeeded()) close_watch(*v);
    if (!r->succeeded()) return own ? stale(sv.id) : Status(ErrorCode::kNotFound, fmt::format("no session '{}'", sv.id));
    if (sv.lease != 0) (void)client_->revoke(sv.lease);  // nothing is attached to it any more
    return {};
  });
}

Result<std::vector<std::string>> EtcdBackend::list_sessions() {
  return call([&]() -> Result<std::vector<std::string>> {
    RangeOptions o;
    o.keys_only = true;
    auto r = client_->range(keys_.sessions(), prefix_end(keys_.sessions()), o);
    if (!r) return r.status();
    std::vector<std::string> ids;
    for (const auto& kv : r->kvs())
      if (auto id = keys_.id_of(kv.key())) ids.push_back(std::move(*id));
    return ids;
  });
}

Result<std::vector<std::int32_t>> EtcdBackend::holder_pids(SessionHandle s) {
  auto v = view(s);
  if (!v) return v.status();
  return call([&]() -> Result<std::vector<std::int32_t>> {
    auto info = read_session(*client_, keys_, (*v)->id);
    if (!info) return info.status();
    if (info->generation != (*v)->generation) return Status(ErrorCode::kNotFound, "session was destroyed or expired");
    auto pids = registered_pids(*client_, keys_);
    if (!pids) return pids.status();
    std::vector<std::int32_t> out;
    for (const auto& e : info->queue)
      if (e.granted && pids->count(e.lease)) out.push_back(pids->at(e.lease));
    return out;
  });
}

// ---- locks ----

Result<std::uint32_t> EtcdBackend::take_slot() {
  std::lock_guard lk(slots_mu_);
  if (free_slots_.empty())
    return Status(ErrorCode::kCapacityExceeded,
                  fmt::format("this process holds or waits for {} locks, the etcd backend's limit", kGrantSlots));
  const std::uint32_t s = free_slots_.back();
  free_slots_.pop_back();
  return s;
}

void EtcdBackend::free_slot(std::uint32_t slot) {
  std::lock_guard lk(slots_mu_);
  free_slots_.push_back(slot);
}

void EtcdBackend::notify() { shm::bump_and_wake(words_->epoch); }

Status EtcdBackend::open_watch(const std::shared_ptr<SessionView>& v) {
  {
    std::lock_guard lk(v->mu);
    if (v->watch >= 0) return {};
    v->synced = false;
    v->early.clear();
  }
  std::weak_ptr<SessionView> weak = v;
  auto w = watcher_->watch(
      v->key, Keys::session_range_end(v->key), 0,
      [this, weak](const Events& events, std::int64_t) {
        auto sv = weak.lock();
        if (!sv) return;
        test_point(TestPoint::kWatchEvents);
        bool tell = false;
        {
          std::lock_guard lk(sv->mu);
          if (!sv->synced) {
            for (const auto& e : events) sv->early.push_back(e);
            return;
          }
          for (const auto& e : events) sv->apply(e);
          tell = sv->evaluate();
        }
        if (tell) notify();
      },
      [this, weak](std::int64_t) {
        // The watch fell behind a compaction and is gone: the view can no longer be trusted.
        // A holder treats its grant as lost (its next fenced call tells for sure); a waiter
        // gives up with kUnavailable and may ask again.
        auto sv = weak.lock();
        if (!sv) return;
        {
          std::lock_guard lk(sv->mu);
          sv->watch = -1;
          sv->synced = false;
          if (sv->token != 0 && sv->granted) std::atomic_ref<std::uint32_t>(sv->words->state).store(0);
          sv->lost = sv->token != 0 && !sv->granted;
          sv->cv.notify_all();
        }
        notify();
      });
  if (!w) return w.status();
  std::lock_guard lk(v->mu);
  v->watch = w->handle;
  return {};
}

void EtcdBackend::close_watch(const std::shared_ptr<SessionView>& v) {
  std::int64_t h;
  {
    std::lock_guard lk(v->mu);
    h = std::exchange(v->watch, -1);
    v->synced = false;
  }
  if (h >= 0) watcher_->cancel(h);
}

// Renews the session lease while the grant lasts (with v.mu held; KeepAlive's lock nests inside).
void EtcdBackend::keep_session_lease(SessionView& v) {
  if (v.kept_lease == v.lease) return;
  if (v.kept_lease != 0) stop_keeping_session_lease(v);
  v.kept_lease = v.lease;
  if (v.lease == 0) return;
  const std::int64_t ttl = v.lease_ttl_seconds();
  // Renewed by this process within the last two thirds of a TTL (a grant released a moment ago):
  // the next renewal is due a third of a TTL after that one, not now.
  if (v.lease == v.renewed.lease && v.renewed.alive_until - std::chrono::seconds(ttl) * 2 / 3 > Clock::now()) {
    const Clock::time_point sent = v.renewed.alive_until - std::chrono::seconds(ttl);
    keep_alive_->add(Lease{v.lease, ttl, sent}, sent + std::chrono::seconds(ttl) / 3);
  } else {
    keep_alive_->add(Lease{v.lease, ttl, Clock::now()});
  }
}

void EtcdBackend::stop_keeping_session_lease(SessionView& v) {
  const std::int64_t lease = std::exchange(v.kept_lease, 0);
  if (auto until = keep_alive_->alive_until(lease)) v.renewed = {lease, *until};
  keep_alive_->remove(lease);
}

// The request is over (released, withdrawn, destroyed): forget it. The watch stays while the
// session is there: the next request then costs one txn (its view is synced already), not a
// watch creation first. A view whose session is gone stops watching.
void EtcdBackend::finish_request(const std::shared_ptr<SessionView>& v) {
  std::uint32_t slot;
  bool gone;
  {
    std::lock_guard lk(v->mu);
    gone = v->session_gone;
    if (v->token == 0) return;
    std::atomic_ref<std::uint32_t>(v->words->state).store(0, std::memory_order_release);
    v->token = 0;
    v->granted = v->lost = false;
    v->my_key.clear();
    v->my_lease = 0;
    slot = v->slot;
    if (v->kept_lease != 0) stop_keeping_session_lease(*v);
  }
  free_slot(slot);
  if (gone) close_watch(v);
}

Result<Grant> EtcdBackend::request(SessionHandle s, Mode mode, Clock::time_point deadline, bool wait) {
  auto vr = view(s);
  if (!vr) return vr.status();
  return call([&]() -> Result<Grant> {
    const std::shared_ptr<SessionView>& v = *vr;
    auto lease = process_lease();
    if (!lease) return lease.status();
    auto slot = take_slot();
    if (!slot) return slot.status();
    GrantSlot* words = &slots_[*slot];
    std::atomic_ref<std::uint32_t>(words->state).store(0);
    std::atomic_ref<std::uint32_t>(words->revoke).store(0);
    // The watch first, synced from now: every change after the txn below reaches it.
    if (Status st = open_watch(v); !st) {
      free_slot(*slot);
      return st;
    }
    const bool exclusive = mode == Mode::kExclusive;
    const std::string my_key = Keys::queue(v->key, *lease, requests_.fetch_add(1, std::memory_order_relaxed) + 1);
    const std::string qp = Keys::queue_prefix(v->key);
    TxnRequest t;
    cmp_create(t, v->key, v->generation);
    auto* then = t.mutable_success();
    if (wait) {
      cmp_create(t, my_key, 0);
      add_put(then, my_key, exclusive ? "X" : "S", *lease);
    } else {
      // Granted at once or nothing: put the key only if no key is in the queue, or (shared) if
      // every key is shared. A compare over a range holds for every key in it; an empty range
      // compares as a key with create_revision 0 (and never equal in value).
      auto* inner = then->Add()->mutable_request_txn();
      Compare* empty = inner->add_compare();
      empty->set_key(qp);
      empty->set_range_end(prefix_end(qp));
      empty->set_target(Compare::CREATE);
      empty->set_result(Compare::LESS);
      empty->set_create_revision(1);
      add_put(inner->mutable_success(), my_key, exclusive ? "X" : "S", *lease);
      if (!exclusive) {
        auto* shared = inner->mutable_failure()->Add()->mutable_request_txn();
        Compare* all_shared = shared->add_compare();
        all_shared->set_key(qp);
        all_shared->set_range_end(prefix_end(qp));
        all_shared->set_target(Compare::VALUE);
        all_shared->set_result(Compare::EQUAL);
        all_shared->set_value("S");
        add_put(shared->mutable_success(), my_key, "S", *lease);
      }
    }
    add_range(then, v->key, Keys::session_range_end(v->key));
    add_range(t.mutable_failure(), v->key);
    auto r = client_->txn(t);
    auto fail = [&](Status st) -> Result<Grant> {
      free_slot(*slot);
      return st;
    };
    if (!r) return fail(r.status());
    if (!r->succeeded()) {
      // The session is gone, or (a retried txn) this process's key is there already: the first
      // attempt landed. Take it back out; the caller asks again.
      TxnRequest undo;
      cmp_create(undo, my_key, 0, Compare::GREATER);
      add_delete(undo.mutable_success(), my_key);
      (void)client_->txn(undo);
      const auto& now = r->responses(0).response_range();
      if (now.kvs_size() == 0 || now.kvs(0).create_revision() != v->generation)
        return fail(Status(ErrorCode::kNotFound, fmt::format("session '{}' was destroyed or expired", v->id)));
      return fail(Status(ErrorCode::kUnavailable,
                         fmt::format("session '{}': a repeated request found its first attempt queued; ask again", v->id)));
    }
    const auto& ops = r->responses();
    const etcdserverpb::RangeResponse& snapshot = ops[ops.size() - 1].response_range();
    if (!wait) {
      const auto& inner = ops[0].response_txn();
      const bool put = inner.succeeded() || (inner.responses_size() > 0 && inner.responses(0).response_txn().succeeded());
      if (!put) return fail(Status(ErrorCode::kBusy, fmt::format("session '{}' is locked", v->id)));
    }
    const std::int64_t token = r->header().revision();
    bool granted;
    {
      std::unique_lock lk(v->mu);
      v->my_key = my_key;
      v->my_lease = *lease;
      v->token = token;
      v->exclusive = exclusive;
      v->granted = v->lost = false;
      v->slot = *slot;
      v->words = words;
      // The txn's range is the queue at its revision: newer than the view unless the watch has
      // already delivered past it (then the view holds this request's key too).
      if (!v->synced || v->applied < r->header().revision()) v->install(snapshot, r->header().revision());
      (void)v->evaluate();
      auto done = [&] { return v->granted || v->lost || cancelled_.load(std::memory_order_acquire); };
      if (wait) {
        while (!done() && Clock::now() < deadline) v->cv.wait_until(lk, deadline);
      }
      granted = v->granted;
      if (granted) keep_session_lease(*v);
    }
    if (!granted) {
      // Withdraw: delete the key if it is still ours (granted meanwhile or not).
      TxnRequest w;
      cmp_create(w, my_key, token);
      add_delete(w.mutable_success(), my_key);
      bool lost, cancelled = cancelled_.load();
      {
        std::lock_guard lk(v->mu);
        lost = v->lost;
      }
      (void)client_->txn(w);
      finish_request(v);
      if (cancelled) return gone(false);
      if (lost) {
        std::lock_guard lk(v->mu);
        if (v->session_gone) return Status(ErrorCode::kNotFound, fmt::format("session '{}' was destroyed or expired", v->id));
        return Status(ErrorCode::kUnavailable, fmt::format("session '{}': the queued request was lost (lease expired or watch compacted)", v->id));
      }
      if (!wait) return Status(ErrorCode::kBusy, fmt::format("session '{}' is locked", v->id));
      return Status(ErrorCode::kTimeout, fmt::format("session '{}': not granted before the deadline", v->id));
    }
    return Grant{static_cast<std::uint64_t>(token), *slot};
  });
}

Result<Grant> EtcdBackend::acquire(SessionHandle s, Mode mode, Clock::time_point deadline) {
  return request(s, mode, deadline, true);
}
Result<Grant> EtcdBackend::try_acquire(SessionHandle s, Mode mode) { return request(s, mode, {}, false); }

Status EtcdBackend::release(SessionHandle s, const Grant& g) {
  auto vr = view(s);
  if (!vr) return vr.status();
  if (forked()) return gone(true);
  const std::shared_ptr<SessionView>& v = *vr;
  std::string my_key;
  {
    std::lock_guard lk(v->mu);
    if (v->token == 0 || v->token != static_cast<std::int64_t>(g.token))
      return Status(ErrorCode::kNotHeld, fmt::format("session '{}': not held", v->id));
    my_key = v->my_key;
  }
  // Forget the grant before the delete: the watch may report the DELETE before the txn's answer,
  // and a view still holding the grant would take its own release for a loss (waking the
  // application's revoke thread for nothing, on every release).
  finish_request(v);
  // A plain delete, not a txn comparing the token: the name is this request's alone (Keys::queue),
  // so a delete applied late, or twice, can remove nothing but this request's key, and "nothing
  // deleted" means the key was gone already (the grant lost, or a first attempt that landed).
  auto r = client_->delete_range(my_key);
  if (!r) return r.status();
  return r->deleted() == 1 ? Status{} : stale(v->id);
}

GrantWords EtcdBackend::grant_words(const Grant& g) { return words_of(*words_, g); }
GrantStatus EtcdBackend::grant_status(const Grant& g) { return status_of(*words_, g); }

// ---- data, fenced ----

Result<mvccpb::KeyValue> EtcdBackend::fenced_session(SessionView& v, const Grant& g) {
  std::string my_key;
  {
    std::lock_guard lk(v.mu);
    if (v.token != static_cast<std::int64_t>(g.token) || !v.granted) return stale(v.id);
    my_key = v.my_key;
  }
  TxnRequest t;
  cmp_create(t, my_key, static_cast<std::int64_t>(g.token));
  cmp_create(t, v.key, v.generation);
  add_range(t.mutable_success(), v.key);
  auto r = client_->txn(t);
  if (!r) return r.status();
  if (!r->succeeded() || r->responses(0).response_range().kvs_size() == 0) {
    lost_by_store(v, g);
    return stale(v.id);
  }
  const mvccpb::KeyValue& kv = r->responses(0).response_range().kvs(0);
  std::lock_guard lk(v.mu);
  v.lease = kv.lease();
  v.remember(kv);
  return kv;
}

// A fenced txn found `g` gone (its queue key deleted, by a break-lock say, or the session): the
// store says so before the watch may have. The grant's state word says lost from now on (never
// back: evaluate() sets it only when it grants), so the library gives the cached grant up at its
// next look instead of locking on it again; the revoke thread is told, as for a loss the watch
// brings.
void EtcdBackend::lost_by_store(SessionView& v, const Grant& g) {
  bool tell = false;
  {
    std::lock_guard lk(v.mu);
    if (v.token == static_cast<std::int64_t>(g.token) && v.granted) {
      std::atomic_ref<std::uint32_t> state(v.words->state);
      tell = state.load() == kGrantHeldWord;
      state.store(0, std::memory_order_release);
    }
  }
  if (tell) notify();
}

// A write of the session key as read at `mod_revision`, fenced by the grant: the caller adds the put.
TxnRequest EtcdBackend::fenced_write(SessionView& v, const Grant& g, std::int64_t mod_revision) {
  std::string my_key;
  {
    std::lock_guard lk(v.mu);
    my_key = v.my_key;
  }
  TxnRequest t;
  cmp_create(t, my_key, static_cast<std::int64_t>(g.token));
  cmp_mod(t, v.key, mod_revision);
  return t;
}

// The session's value, read fenced by `g` (kStaleToken, never data, for a grant that is gone).
Result<SessionValue> EtcdBackend::fenced_value(SessionHandle s, const Grant& g) {
  auto v = view(s);
  if (!v) return v.status();
  if (forked()) return gone(true);
  auto kv = fenced_session(**v, g);
  if (!kv) return kv.status();
  return SessionValue::decode(kv->value());
}

// No ReadCopy: a commit is built on the session value the watch keeps.
Result<std::optional<std::string>> EtcdBackend::read(SessionHandle s, const Grant& g, std::string_view name,
                                                       ReadCopySlot* /*copy*/) {
  auto value = fenced_value(s, g);
  if (!value) return value.status();
  auto it = value->attrs.find(name);
  if (it == value->attrs.end()) return std::optional<std::string>{};
  return std::optional<std::string>(std::move(it->second));
}

Result<AttrMap> EtcdBackend::read_all(SessionHandle s, const Grant& g, ReadCopySlot* /*copy*/) {
  auto value = fenced_value(s, g);
  if (!value) return value.status();
  return std::move(value->attrs);
}

Status EtcdBackend::commit(SessionHandle s, const Grant& g, const ChangeSet& changes, ReadCopySlot* /*copy*/) {
  auto vr = view(s);
  if (!vr) return vr.status();
  return call([&]() -> Status {
    SessionView& v = **vr;
    // Read, change, write back if nothing wrote in between (only this holder can, but a repeated
    // txn must not apply twice): the write compares the token and the session key's mod_revision.
    // The first attempt starts from the value the view has (no read: one round trip per commit);
    // a failed compare then reads it fresh.
    for (int attempt = 0; attempt < 8; ++attempt) {
      mvccpb::KeyValue kv;
      if (std::optional<SessionView::Value> known = attempt == 0 ? v.value_under(g) : std::nullopt) {
        kv.set_mod_revision(known->mod_revision);
        kv.set_lease(known->lease);
        kv.set_value(std::move(known->bytes));
      } else {
        auto read = fenced_session(v, g);
        if (!read) return read.status();
        kv = std::move(*read);
      }
      auto value = SessionValue::decode(kv.value());
      if (!value) return value.status();
      for (const auto& [name, val] : changes) {
        if (val) value->attrs.insert_or_assign(name, *val);
        else value->attrs.erase(name);
      }
      std::string bytes = value->encode();
      if (bytes.size() > kMaxSessionBytes)
        return Status(ErrorCode::kTooLarge,
                      fmt::format("session '{}' would be {} bytes; the etcd backend's limit is {}", v.id, bytes.size(), kMaxSessionBytes));
      TxnRequest t = fenced_write(v, g, kv.mod_revision());
      add_put(t.mutable_success(), v.key, bytes, kv.lease());
      auto r = client_->txn(t);
      if (!r) return r.status();
      if (r->succeeded()) {
        mvccpb::KeyValue written;
        written.set_mod_revision(r->header().revision());
        written.set_lease(kv.lease());
        written.set_value(std::move(bytes));
        std::lock_guard lk(v.mu);
        v.remember(written);
        return {};
      }
    }
    return Status(ErrorCode::kSystem, fmt::format("session '{}': commit kept racing another writer", v.id));
  });
}

// ---- expiry ----

void EtcdBackend::touch(SessionHandle s) {
  auto v = view(s);
  if (!v || forked()) return;
  std::int64_t lease;
  {
    std::lock_guard lk((*v)->mu);
    if ((*v)->kept_lease != 0) return;  // renewed while granted
    lease = (*v)->lease;
  }
  if (lease != 0) (void)call([&] { return renew_once(*client_, lease); });
}

Status EtcdBackend::set_ttl(SessionHandle s, const Grant& g, std::uint64_t ttl_ms) {
  auto vr = view(s);
  if (!vr) return vr.status();
  return call([&]() -> Status {
    SessionView& v = **vr;
    auto kv = fenced_session(v, g);
    if (!kv) return kv.status();
    auto value = SessionValue::decode(kv->value());
    if (!value) return value.status();
    value->ttl_ms = ttl_ms;
    auto lease = client_->grant(ttl_seconds(ttl_ms));
    if (!lease) return lease.status();
    mvccpb::KeyValue written;
    written.set_value(value->encode());
    written.set_lease(lease->id);
    TxnRequest t = fenced_write(v, g, kv->mod_revision());
    add_put(t.mutable_success(), v.key, written.value(), lease->id);
    auto r = client_->txn(t);
    if (!r || !r->succeeded()) {
      (void)client_->revoke(lease->id);
      if (!r) return r.status();
      return stale(v.id);
    }
    (void)client_->revoke(kv->lease());  // nothing is attached to the old lease any more
    written.set_mod_revision(r->header().revision());
    std::lock_guard lk(v.mu);
    // The view takes the new value (and lease) now, not when the watch brings it: the keep-alive
    // below renews the new lease by the new TTL, not the old one (a shorter TTL renewed at the old
    // one's pace would expire under its holder).
    v.remember(written);
    if (v.kept_lease != 0 && v.token == static_cast<std::int64_t>(g.token)) keep_session_lease(v);
    return Status{};
  });
}

Status EtcdBackend::touch(SessionHandle s, const Grant& g) {
  auto vr = view(s);
  if (!vr) return vr.status();
  return call([&]() -> Status {
    auto kv = fenced_session(**vr, g);
    if (!kv) return kv.status();
    Status st = renew_once(*client_, kv->lease());
    return st.code() == ErrorCode::kNotFound ? stale((*vr)->id) : st;
  });
}

Result<std::optional<std::uint64_t>> EtcdBackend::ttl_remaining(SessionHandle s, const Grant& g) {
  auto vr = view(s);
  if (!vr) return vr.status();
  return call([&]() -> Result<std::optional<std::uint64_t>> {
    auto kv = fenced_session(**vr, g);
    if (!kv) return kv.status();
    auto ttl = client_->time_to_live(kv->lease());
    if (!ttl) return ttl.status();
    return std::optional<std::uint64_t>(ttl->ttl() > 0 ? static_cast<std::uint64_t>(ttl->ttl()) * 1000 : 0);
  });
}

// ---- notifications ----

std::uint32_t EtcdBackend::notification_epoch() { return shm::load(words_->epoch); }
void EtcdBackend::wait_notification(std::uint32_t seen, Clock::time_point deadline) {
  shm::futex_wait(words_->epoch, seen, deadline);
}
void EtcdBackend::interrupt_notification_wait() { notify(); }

}  // namespace sessionbroker::detail::etcd
