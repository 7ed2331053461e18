// A small, thread-safe client for etcd v3.4's gRPC API, in the library's own terms (Status,
// Result<T>). The etcd backend builds on it; KeepAlive (keep_alive.hpp) and Watcher (watcher.hpp)
// run their streams over the same Client.
//
// Endpoints and failover. One gRPC channel per endpoint of the address (address.hpp) for calls, and
// one each for its Watch and LeaseKeepAlive streams (Threads, below). A call goes
// to the endpoint that answered last; when that member answers UNAVAILABLE (down, or etcd's "no
// leader" / "leader changed") or does not answer within Options::attempt_timeout, the call moves
// on to the next endpoint, round after round, until Options::request_timeout has passed. Only then
// does it fail, with kUnavailable and a message naming every endpoint tried and its last error.
// Any listed endpoint may be dead or stopped.
//
// Leader required. Every request and stream carries the gRPC metadata "hasleader: true" (etcd's
// WithRequireLeader): a member cut off from the leader refuses it with "no leader" instead of
// serving a stale read or keeping a watch silently open; for streams it cancels them once it has
// been leaderless for three election timeouts. The client takes that as UNAVAILABLE and fails over.
//
// Which calls are retried on another member, and why that is safe:
//   - range, time_to_live, status: reads; always safe.
//   - put, delete_range, txn: an attempt that timed out or lost its connection may still have been
//     applied, so a retry can apply it twice. The caller must make that harmless: every mutation
//     the backend sends is a txn guarded by compares (create_revision of its queue key equal to
//     the token, or == 0 for "create if absent"), so a repeat finds its compare false and changes
//     nothing; a caller that cares whether the first attempt landed reads the failure branch. The
//     one exception, the release, is a plain delete_range of a key whose name no other request
//     uses (docs/etcd.md, "Lock protocol"): a repeat deletes nothing. Plain put and delete_range
//     are idempotent in their effect on the key.
//   - grant: a repeat after a lost answer grants a second lease; the first leaks until its TTL
//     expires (nobody renews it). Harmless, since nothing is attached to it.
//   - revoke: idempotent (a repeat answers kNotFound, "requested lease not found").
//   - compact: idempotent, or kInvalidArgument ("already compacted") on a repeat.
//   - lock (v3lock, bench only): a repeat under the same lease is a no-op on the server.
//
// Error mapping: UNAVAILABLE / DEADLINE_EXCEEDED on every member -> kUnavailable; NOT_FOUND (no
// such lease) and OUT_OF_RANGE (revision compacted) -> kNotFound; INVALID_ARGUMENT and
// FAILED_PRECONDITION -> kInvalidArgument; RESOURCE_EXHAUSTED -> kCapacityExceeded; PERMISSION
// errors -> kPermissionDenied; anything else -> kSystem. Messages keep etcd's own text.
//
// Threads. A synchronous call or stream read sleeps in gRPC's poller until its answer comes. With
// gRPC's default engine (epoll1) one thread at a time polls every connection of the process and
// wakes the thread an answer is for, so a stream reader idle in Read() kept waking for the other
// calls' answers (the etcd agent: about 30 context switches per acquire+release). The agent runs
// the "poll" engine, where a thread polls only its own call's connection; the streams' own
// connections then leave an idle reader asleep (18 switches, 12% less CPU per cycle).
//
// Thread safety: every method may be called from any thread at once.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "address.hpp"
#include "etcdserverpb/rpc.grpc.pb.h"
#include "sessionbroker/error.hpp"
#include "v3lockpb/v3lock.grpc.pb.h"

namespace sessionbroker::detail::etcd {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// The end of the range of every key that starts with `prefix` (etcd's "prefix end").
std::string prefix_end(std::string_view prefix);

struct Options {
  milliseconds request_timeout{5000};  // a whole call, failover included
  milliseconds attempt_timeout{1000};  // one member; a stopped member costs this much
  milliseconds watch_heartbeat{1000};  // Watcher/KeepAlive: idle stream probed this often
};

struct RangeOptions {
  std::int64_t revision = 0;  // 0: the newest
  std::int64_t limit = 0;     // 0: no limit
  bool keys_only = false;
  bool count_only = false;
  bool serializable = false;  // member-local read: may be stale; not for fencing decisions
  etcdserverpb::RangeRequest::SortTarget sort_target = etcdserverpb::RangeRequest::KEY;
  etcdserverpb::RangeRequest::SortOrder sort_order = etcdserverpb::RangeRequest::NONE;
};

struct Lease {
  std::int64_t id = 0;
  std::int64_t ttl_seconds = 0;  // as granted by the server
  Clock::time_point sent_at;     // when the grant was sent: the lease cannot expire before sent_at + ttl
};

class Client {
 public:
  static Result<std::unique_ptr<Client>> connect(const std::vector<std::string>& endpoints, Options options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // KV. range_end as etcd's: empty for one key, prefix_end(p) for a prefix, "\0" for "all >= key".
  Result<etcdserverpb::RangeResponse> range(const std::string& key, const std::string& range_end = {},
                                            const RangeOptions& options = {});
  Result<etcdserverpb::PutResponse> put(const std::string& key, const std::string& value, std::int64_t lease = 0);
  Result<etcdserverpb::DeleteRangeResponse> delete_range(const std::string& key, const std::string& range_end = {});
  // Mutations in it must be guarded by compares so that a retried attempt is harmless (above).
  Result<etcdserverpb::TxnResponse> txn(const etcdserverpb::TxnRequest& request);
  Result<etcdserverpb::CompactionResponse> compact(std::int64_t revision, bool physical = true);

  // Leases. Keep one alive with KeepAlive (keep_alive.hpp).
  Result<Lease> grant(std::int64_t ttl_seconds);
  Status revoke(std::int64_t lease_id);
  Result<etcdserverpb::LeaseTimeToLiveResponse> time_to_live(std::int64_t lease_id, bool keys = false);

  // Maintenance: one member's status (its id, the leader it follows), asked of that member only.
  Result<etcdserverpb::StatusResponse> status(std::size_t endpoint);
  // The index of the endpoint that is the leader, by asking each member (kUnavailable if none is).
  Result<std::size_t> leader();

  // etcd's own lock service (the bench's reference point).
  Result<etcdserverpb::ResponseHeader> lock(const std::string& name, std::int64_t lease, std::string* key);
  Status unlock(const std::string& key);

  // For KeepAlive and Watcher: the endpoints, their stubs, the one to try first.
  struct Endpoint {
    std::string target;
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<etcdserverpb::KV::Stub> kv;
    std::unique_ptr<etcdserverpb::Watch::Stub> watch;            // on a connection of its own
    std::unique_ptr<etcdserverpb::Lease::Stub> keep_alive;       // LeaseKeepAlive, on its own too
    std::unique_ptr<etcdserverpb::Lease::Stub> lease;            // grant, revoke, time to live
    std::unique_ptr<etcdserverpb::Maintenance::Stub> maintenance;
    std::unique_ptr<v3lockpb::Lock::Stub> lock;
  };
  std::size_t endpoint_count() const { return endpoints_.size(); }
  Endpoint& endpoint(std::size_t i) { return endpoints_[i]; }
  std::size_t preferred() const { return preferred_.load(std::memory_order_relaxed) % endpoints_.size(); }
  void prefer(std::size_t i) { preferred_.store(i, std::memory_order_relaxed); }
  const Options& options() const { return options_; }
  // A context for one stream: hasleader metadata, no deadline (streams live until cancelled).
  static void prepare_stream_context(grpc::ClientContext& context);

 private:
  Client(std::vector<Endpoint> endpoints, Options options);
  template <class Resp, class Fn>
  Result<Resp> call(const char* what, Fn&& fn, bool one_endpoint = false, std::size_t only = 0);

  std::vector<Endpoint> endpoints_;
  Options options_;
  std::atomic<std::size_t> preferred_{0};
};

// Maps a gRPC status to the library's codes (kUnavailable for UNAVAILABLE/DEADLINE_EXCEEDED).
Status from_grpc(const grpc::Status& status, std::string_view what);
// True for the errors a call fails over on: the member is down, stopped, or has no leader.
bool should_fail_over(const grpc::Status& status);

}  // namespace sessionbroker::detail::etcd
