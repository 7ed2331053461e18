// KeepAlive: renews a set of etcd leases over one LeaseKeepAlive stream and says when one is lost.
//
// Protocol. A background thread (the supervisor) owns one bidirectional stream to one member and
// a reader thread drains its answers. Each lease is renewed every ttl/3: the supervisor sends its
// id and remembers the send time; the answer's TTL, counted from that send time, is how long the
// lease is then known to live (the server renewed it no earlier than we sent). At most one
// renewal per lease is in flight. A renewal unanswered after min(attempt_timeout, max(ttl/3,
// 200 ms)), a broken stream, or "no leader" (hasleader metadata) makes the supervisor cancel the
// stream and open one to the next member, renewing every lease at once there.
//
// Lost. A lease is reported lost (on_lost, then forgotten) when
//   - the server answers TTL <= 0: it expired or was revoked; or
//   - its deadline passes with no renewal answered: deadline = send time of the last answered
//     renewal (or of the grant) + TTL in whole seconds. etcd counts TTLs in whole seconds and a
//     new leader restarts every lease's TTL, so the lease may in fact live longer; it never
//     lives shorter, so "alive" is never reported for a lease that may have expired.
// A lost lease is never renewed again, even if the server would still accept it: the owner must
// treat everything attached to it as gone (its locks' tokens are stale).
//
// Thread safety: add/remove/alive_until from any thread. on_lost runs on the supervisor thread,
// never under a KeepAlive lock (it may call add/remove); it must not destroy the KeepAlive.
// The destructor stops both threads promptly (TryCancel) without reporting anything.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "etcd_client.hpp"

namespace sessionbroker::detail::etcd {

class KeepAlive {
 public:
  using OnLost = std::function<void(std::int64_t lease_id, const std::string& why)>;

  KeepAlive(Client& client, OnLost on_lost);
  ~KeepAlive();
  KeepAlive(const KeepAlive&) = delete;
  KeepAlive& operator=(const KeepAlive&) = delete;

  // Starts renewing `lease` (as returned by Client::grant); its first deadline is sent_at + ttl.
  // The first renewal is sent at once, or at `first_renewal` for a lease known renewed recently.
  void add(const Lease& lease, std::optional<Clock::time_point> first_renewal = std::nullopt);
  // Stops renewing without a callback (the owner revokes it, or lets it expire).
  void remove(std::int64_t lease_id);
  // Until when the lease is known alive; nullopt when not kept (never added, removed or lost).
  std::optional<Clock::time_point> alive_until(std::int64_t lease_id) const;

 private:
  struct Entry {
    std::chrono::seconds ttl;
    Clock::time_point deadline;                  // known alive until then
    Clock::time_point next_send;                 // next renewal due
    std::optional<Clock::time_point> in_flight;  // send time of the unanswered renewal
  };
  struct Stream;
  struct Round {
    std::vector<std::int64_t> to_send;  // renewals due now
    Clock::time_point wake;             // when to plan again
    bool stream_dead;                   // a renewal went unanswered too long
  };

  void run();
  void serve(std::unique_lock<std::mutex>& lk, Stream& s);
  Round plan(Clock::time_point now, bool connected);
  void report_lost(std::unique_lock<std::mutex>& lk);
  void read_loop(Stream& s);
  void on_answer(const etcdserverpb::LeaseKeepAliveResponse& r);
  milliseconds answer_timeout(const Entry& e) const;

  Client& client_;
  const OnLost on_lost_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::int64_t, Entry> leases_;             // GUARDED_BY(mu_)
  std::vector<std::pair<std::int64_t, std::string>> lost_;  // GUARDED_BY(mu_): to report
  Stream* stream_ = nullptr;                          // GUARDED_BY(mu_): for TryCancel on stop
  bool stop_ = false;                                 // GUARDED_BY(mu_)
  std::optional<Clock::time_point> asleep_until_;     // GUARDED_BY(mu_): the supervisor waits until then
  std::thread supervisor_;
};

}  // namespace sessionbroker::detail::etcd
