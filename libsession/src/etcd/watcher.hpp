// Watcher: etcd watches over one Watch stream per Watcher, resumed on another member when the
// stream breaks.
//
// Why one stream for all watches: etcd multiplexes watches on a stream by watch_id, so a
// process's watches (its sessions' queue prefixes) cost one HTTP/2 stream and one pair of server
// goroutines instead of one per watch; a broken stream is then one reconnect that re-creates
// every watch. The cost: one slow callback delays every watch of this Watcher (callbacks must be
// short: hand work to another thread).
//
// Protocol. A supervisor thread owns the stream: it opens it on the preferred member with
// "hasleader: true", (re)creates every watch on it with the client-chosen watch_id = handle and
// start_revision = the watch's next revision, and probes it with a WatchProgressRequest whenever
// it was quiet for Options::watch_heartbeat. A reader thread delivers responses. The stream is
// dropped and opened on the next member when it ends (member killed; member leaderless for three
// election timeouts, which etcd signals by cancelling hasleader streams), or when a probe or a
// create goes unanswered for attempt_timeout (member stopped or cut off).
//
// Resume. Each watch remembers next = last delivered event's mod_revision + 1 (or, before any
// event, the revision it started at); it is re-created from there, so no event is lost or
// delivered twice (events below next are dropped, should a member replay them). When next was
// compacted meanwhile, etcd cancels the watch with its compact revision: on_compacted(rev) is
// called, the watch is gone, and the owner rebuilds from a fresh read and watches again.
// Progress responses never advance next: in 3.4 their revision does not promise that every
// earlier event was sent.
//
// The unsynced loop. etcd serves a watch whose start revision is at or below the store's current
// revision from an "unsynced" group caught up every 100 ms; one starting after it (or at 0) is
// synced at once and sees the next write within a round trip. watch() returns only when the
// server confirmed the watch (created), with the revision it started at: a write sent after
// watch() returned is seen by it. (Start at the revision after your read to get both.)
//
// Thread safety: all methods from any thread. Callbacks run on the reader thread, one at a time,
// never under a Watcher lock; a callback may call cancel() and status(), not watch() (it would
// wait for a confirmation that the busy reader cannot deliver: kInvalidArgument), and must not
// destroy the Watcher. A watch's first callbacks may run before watch() has returned its handle. After
// cancel(h) returns, no callback for h runs (unless cancel was called from a callback).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "etcd_client.hpp"

namespace sessionbroker::detail::etcd {

using Events = google::protobuf::RepeatedPtrField<mvccpb::Event>;
// Events of one or more revisions, in revision order; header_revision is the store's revision
// when they were sent.
using OnEvents = std::function<void(const Events& events, std::int64_t header_revision)>;
using OnCompacted = std::function<void(std::int64_t compact_revision)>;

struct WatchStarted {
  std::int64_t handle = 0;
  std::int64_t start_revision = 0;  // the first revision this watch reports
};

class Watcher {
 public:
  explicit Watcher(Client& client);
  ~Watcher();
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  // Watches [key, range_end) (range_end empty: key alone) from start_revision (0: after the
  // current revision); with deletes_only, etcd sends no PUT events (its NOPUT filter: a put in
  // the range costs the watcher nothing). Returns once the server confirmed it; kUnavailable when
  // no member did within request_timeout; kInvalidArgument when etcd refused the watch.
  Result<WatchStarted> watch(const std::string& key, const std::string& range_end, std::int64_t start_revision,
                             OnEvents on_events, OnCompacted on_compacted, bool deletes_only = false);
  // Stops the watch; no-op for an unknown handle.
  void cancel(std::int64_t handle);
  // OK while a stream answers; otherwise why not (kUnavailable naming the member and its error).
  Status status() const;

 private:
  struct Watch;
  struct Stream;
  using WatchPtr = std::shared_ptr<Watch>;

  void run();
  Status serve(std::unique_lock<std::mutex>& lk, Stream& s);
  void read_loop(Stream& s);
  void on_response(Stream& s, const etcdserverpb::WatchResponse& r);
  void deliver_events(const etcdserverpb::WatchResponse& r);
  void deliver_compacted(const etcdserverpb::WatchResponse& r);
  void send_creates();
  bool write(const etcdserverpb::WatchRequest& req);

  Client& client_;
  // Lock order: write_mu_, then mu_. dispatch_mu_ is never taken under either.
  std::mutex write_mu_;                         // serializes writes to the current stream
  std::shared_ptr<Stream> writable_;            // GUARDED_BY(write_mu_)
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::int64_t, WatchPtr> watches_;    // GUARDED_BY(mu_), by handle (= watch_id on the wire)
  std::int64_t next_handle_ = 0;                // GUARDED_BY(mu_)
  std::uint64_t gen_ = 0;                       // GUARDED_BY(mu_): stream generation
  Stream* live_ = nullptr;                      // GUARDED_BY(mu_): for TryCancel on stop
  Status status_{ErrorCode::kUnavailable, "etcd watch stream: not connected yet"};  // GUARDED_BY(mu_)
  bool stop_ = false;                           // GUARDED_BY(mu_)
  std::mutex dispatch_mu_;                      // held while a callback runs
  std::thread supervisor_;
};

}  // namespace sessionbroker::detail::etcd
