#include "etcd_client.hpp"

#include <algorithm>
#include <thread>

namespace sessionbroker::detail::etcd {
namespace {

std::chrono::system_clock::time_point to_system(Clock::time_point t) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(t - Clock::now());
}

std::string describe(const grpc::Status& s) {
  switch (s.error_code()) {
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "no answer in time";
    case grpc::StatusCode::UNAVAILABLE: return s.error_message().empty() ? "unavailable" : s.error_message();
    default: return s.error_message();
  }
}

}  // namespace

std::string prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) < 0xff) {
      end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // all bytes 0xff (or empty): every key from prefix on
}

bool should_fail_over(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAVAILABLE || s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
}

Status from_grpc(const grpc::Status& s, std::string_view what) {
  std::string msg = std::string(what) + ": " + describe(s);
  switch (s.error_code()) {
    case grpc::StatusCode::OK: return Status::ok();
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED: return {ErrorCode::kUnavailable, std::move(msg)};
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::OUT_OF_RANGE: return {ErrorCode::kNotFound, std::move(msg)};
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION: return {ErrorCode::kInvalidArgument, std::move(msg)};
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return {ErrorCode::kCapacityExceeded, std::move(msg)};
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED: return {ErrorCode::kPermissionDenied, std::move(msg)};
    default: return {ErrorCode::kSystem, std::move(msg)};
  }
}

void Client::prepare_stream_context(grpc::ClientContext& context) { context.AddMetadata("hasleader", "true"); }

Result<std::unique_ptr<Client>> Client::connect(const std::vector<std::string>& targets, Options options) {
  if (targets.empty()) return Status{ErrorCode::kInvalidArgument, "etcd client: no endpoint"};
  std::vector<Endpoint> eps;
  for (const auto& t : targets) {
    grpc::ChannelArguments args;
    // Reconnect to a restarted member within ~100 ms..1 s, not gRPC's default 1 s..120 s. (Not
    // GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: gRPC uses it as the connect timeout, which must stay long.)
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    // A failed connection makes gRPC re-resolve the name before it reconnects; its DNS resolver
    // waits 30 s between resolutions by default, which kept a restarted member unreachable that long.
    args.SetInt(GRPC_ARG_DNS_MIN_TIME_BETWEEN_RESOLUTIONS_MS, 100);
    // Our own channels: a member killed under another Client in this process is not shared state.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    Endpoint ep;
    ep.target = t;
    ep.channel = grpc::CreateCustomChannel(t, grpc::InsecureChannelCredentials(), args);
    // Each stream on a connection of its own (a distinct argument keeps gRPC from sharing one):
    // a thread blocked reading a stream then polls only that connection (header: "Threads").
    auto own_connection = [&](const char* role) {
      grpc::ChannelArguments a = args;
      a.SetString("sessionbroker.connection", role);
      return grpc::CreateCustomChannel(t, grpc::InsecureChannelCredentials(), a);
    };
    ep.kv = etcdserverpb::KV::NewStub(ep.channel);
    ep.watch = etcdserverpb::Watch::NewStub(own_connection("watch"));
    ep.keep_alive = etcdserverpb::Lease::NewStub(own_connection("keep-alive"));
    ep.lease = etcdserverpb::Lease::NewStub(ep.channel);
    ep.maintenance = etcdserverpb::Maintenance::NewStub(ep.channel);
    ep.lock = v3lockpb::Lock::NewStub(ep.channel);
    eps.push_back(std::move(ep));
  }
  return std::unique_ptr<Client>(new Client(std::move(eps), options));
}

Client::Client(std::vector<Endpoint> endpoints, Options options)
    : endpoints_(std::move(endpoints)), options_(options) {}

Client::~Client() = default;

// One call with failover: the preferred endpoint first, then the others in turn, each attempt
// bounded by attempt_timeout, the whole by request_timeout. A full round without an answer waits a
// short, growing pause (10..200 ms) before the next, so an election (no member has a leader for a
// few hundred ms) is ridden out instead of burning the budget in a tight loop.
template <class Resp, class Fn>
Result<Resp> Client::call(const char* what, Fn&& fn, bool one_endpoint, std::size_t only) {
  const auto deadline = Clock::now() + options_.request_timeout;
  const std::size_t n = one_endpoint ? 1 : endpoints_.size();
  const std::size_t first = one_endpoint ? only : preferred();
  std::vector<std::string> last_error(endpoints_.size());
  milliseconds pause{10};
  for (std::size_t attempt = 0;; ++attempt) {
    const std::size_t i = (first + attempt) % endpoints_.size();
    const auto now = Clock::now();
    if (now >= deadline) break;
    grpc::ClientContext ctx;
    ctx.AddMetadata("hasleader", "true");
    ctx.set_deadline(to_system(std::min(deadline, now + options_.attempt_timeout)));
    Resp resp;
    const grpc::Status st = fn(endpoints_[i], &ctx, &resp);
    if (st.ok()) {
      if (!one_endpoint) prefer(i);
      return resp;
    }
    if (!should_fail_over(st)) return from_grpc(st, std::string("etcd ") + what + " at " + endpoints_[i].target);
    last_error[i] = describe(st);
    if ((attempt + 1) % n == 0) {
      std::this_thread::sleep_until(std::min(deadline, Clock::now() + pause));
      pause = std::min(pause * 2, milliseconds(200));
    }
  }
  std::string msg = std::string("etcd ") + what + ": no member answered within " +
                    std::to_string(options_.request_timeout.count()) + " ms (tried";
  for (std::size_t i = 0; i < endpoints_.size(); ++i) {
    if (last_error[i].empty()) continue;
    msg += " " + endpoints_[i].target + ": " + last_error[i] + ";";
  }
  if (msg.back() == ';') msg.pop_back();
  return Status{ErrorCode::kUnavailable, msg + ")"};
}

Result<etcdserverpb::RangeResponse> Client::range(const std::string& key, const std::string& range_end,
                                                  const RangeOptions& o) {
  etcdserverpb::RangeRequest req;
  req.set_key(key);
  req.set_range_end(range_end);
  req.set_revision(o.revision);
  req.set_limit(o.limit);
  req.set_keys_only(o.keys_only);
  req.set_count_only(o.count_only);
  req.set_serializable(o.serializable);
  req.set_sort_target(o.sort_target);
  req.set_sort_order(o.sort_order);
  return call<etcdserverpb::RangeResponse>("range", [&](Endpoint& e, grpc::ClientContext* c, auto* r) {
    return e.kv->Range(c, req, r);
  });
}

Result<etcdserverpb::PutResponse> Client::put(const std::string& key, const std::string& value, std::int64_t lease) {
  etcdserverpb::PutRequest req;
  req.set_key(key);
  req.set_value(value);
  req.set_lease(lease);
  return call<etcdserverpb::PutResponse>("put", [&](Endpoint& e, grpc::ClientContext* c, auto* r) {
    return e.kv->Put(c, req, r);
  });
}

Result<etcdserverpb::DeleteRangeResponse> Client::delete_range(const std::string& key, const std::string& range_end) {
  etcdserverpb::DeleteRangeRequest req;
  req.set_key(key);
  req.set_range_end(range_end);
  return call<etcdserverpb::DeleteRangeResponse>("delete", [&](Endpoint& e, grpc::ClientContext* c, auto* r) {
    return e.kv->DeleteRange(c, req, r);
  });
}

Result<etcdserverpb::TxnResponse> Client::txn(const etcdserverpb::TxnRequest& req) {
  return call<etcdserverpb::TxnResponse>("txn", [&](Endpoint& e, grpc::ClientContext* c, auto* r) {
    return e.kv->Txn(c, req, r);
  });
}

Result<etcdserverpb::CompactionResponse> Client::compact(std::int64_t revision, bool physical) {
  etcdserverpb::CompactionRequest req;
  req.set_revision(revision);
  req.set_physical(physical);
  return call<etcdserverpb::CompactionResponse>("compact", [&](Endpoint& e, grpc::ClientContext* c, auto* r) {
    return e.kv->Compact(c, req, r);
  });
}

Result<Lease> Client::grant(std::int64_t ttl_seconds) {
  if (ttl_seconds <= 0) return Status{ErrorCode::kInvalidArgument, "etcd lease grant: TTL must be positive"};
  etcdserverpb::LeaseGrantRequest req;
  req.set_ttl(ttl_seconds);
  const auto sent_at = Clock::now();  // before any attempt: the granted lease started no earlier
  auto r = call<etcdserverpb::LeaseGrantResponse>("lease grant", [&](Endpoint& e, grpc::ClientContext* c, auto* resp) {
    return e.lease->LeaseGrant(c, req, resp);
  });
  if (!r) return r.status();
  if (!r->error().empty()) return Status{ErrorCode::kSystem, "etcd lease grant: " + r->error()};
  return Lease{r->id(), r->ttl(), sent_at};
}

Status Client::revoke(std::int64_t lease_id) {
  etcdserverpb::LeaseRevokeRequest req;
  req.set_id(lease_id);
  auto r = call<etcdserverpb::LeaseRevokeResponse>("lease revoke", [&](Endpoint& e, grpc::ClientContext* c, auto* resp) {
    return e.lease->LeaseRevoke(c, req, resp);
  });
  return r.status();
}

Result<etcdserverpb::LeaseTimeToLiveResponse> Client::time_to_live(std::int64_t lease_id, bool keys) {
  etcdserverpb::LeaseTimeToLiveRequest req;
  req.set_id(lease_id);
  req.set_keys(keys);
  return call<etcdserverpb::LeaseTimeToLiveResponse>("lease time-to-live",
                                                     [&](Endpoint& e, grpc::ClientContext* c, auto* r) {
                                                       return e.lease->LeaseTimeToLive(c, req, r);
                                                     });
}

Result<etcdserverpb::StatusResponse> Client::status(std::size_t endpoint) {
  if (endpoint >= endpoints_.size()) return Status{ErrorCode::kInvalidArgument, "etcd status: no such endpoint"};
  etcdserverpb::StatusRequest req;
  return call<etcdserverpb::StatusResponse>(
      "status", [&](Endpoint& e, grpc::ClientContext* c, auto* r) { return e.maintenance->Status(c, req, r); },
      true, endpoint);
}

Result<std::size_t> Client::leader() {
  for (std::size_t i = 0; i < endpoints_.size(); ++i) {
    auto st = status(i);
    if (st && st->leader() != 0 && st->leader() == st->header().member_id()) return i;
  }
  return Status{ErrorCode::kUnavailable, "etcd: no listed member is the leader"};
}

Result<etcdserverpb::ResponseHeader> Client::lock(const std::string& name, std::int64_t lease, std::string* key) {
  v3lockpb::LockRequest req;
  req.set_name(name);
  req.set_lease(lease);
  auto r = call<v3lockpb::LockResponse>("lock", [&](Endpoint& e, grpc::ClientContext* c, auto* resp) {
    return e.lock->Lock(c, req, resp);
  });
  if (!r) return r.status();
  if (key) *key = r->key();
  return r->header();
}

Status Client::unlock(const std::string& key) {
  v3lockpb::UnlockRequest req;
  req.set_key(key);
  return call<v3lockpb::UnlockResponse>("unlock", [&](Endpoint& e, grpc::ClientContext* c, auto* r) {
           return e.lock->Unlock(c, req, r);
         }).status();
}

}  // namespace sessionbroker::detail::etcd
