// The lock protocol as seen by the client library: the seam where a second backend (for example a
// multi-host one on an existing distributed store) plugs in without changing the public API.
//
// Thread safety: every method may be called concurrently from any thread of the attached process.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sessionbroker/error.hpp"
#include "store.hpp"

namespace sessionbroker::detail {

class Backend {
 public:
  virtual ~Backend() = default;

  // Closes the backend to this process's calls: every later call fails with kDetached, queued
  // requests are called back (they return kDetached), and it returns once no call is in flight.
  // Idempotent; a no-op in a forked child (the registration is the parent's).
  virtual void close() = 0;
  // close(), then frees the registration and everything it still holds. Idempotent; a no-op in a
  // forked child, which must never touch its parent's registration.
  virtual Status detach() = 0;
  // True once an administrator evicted this process (sessionctl evict-client): every later call
  // fails with kDetached; detach() still frees the registration.
  virtual bool evicted() const = 0;
  virtual std::uint32_t max_value_bytes() const = 0;

  virtual Result<SessionRef> create_session(std::string_view id, std::uint64_t ttl_ms) = 0;
  virtual Result<SessionRef> open_session(std::string_view id) = 0;
  // Race-free create-if-absent; `created` says whether this call created it.
  virtual Result<SessionRef> open_or_create_session(std::string_view id, std::uint64_t ttl_ms, bool& created) = 0;
  virtual Status destroy_session(SessionRef ref, const Grant* own) = 0;
  virtual Result<std::vector<std::string>> list_sessions() = 0;

  // Process-level lock. Blocks (queued FIFO) until granted or the deadline.
  virtual Result<Grant> acquire(SessionRef ref, shm::LockMode mode, Clock::time_point deadline) = 0;
  // Granted at once or kBusy; a busy try queues nothing and asks no holder for anything.
  virtual Result<Grant> try_acquire(SessionRef ref, shm::LockMode mode) = 0;
  virtual Status release(SessionRef ref, const Grant& g) = 0;
  virtual GrantStatus grant_status(const Grant& g) = 0;
  // The segment record of a grant this process holds, for grant_status_of() without a call (the
  // fast lane asks on every thread lock); valid while the backend lives. nullptr if `g` names none.
  virtual const shm::LockRecord* grant_record(const Grant& g) = 0;
  virtual void touch(SessionRef ref) = 0;
  // Expiry of a held session, fenced by the grant's token (Store::set_ttl and the two after it).
  virtual Status set_ttl(SessionRef ref, const Grant& g, std::uint64_t ttl_ms) = 0;
  virtual Status touch(SessionRef ref, const Grant& g) = 0;
  virtual Result<std::optional<std::uint64_t>> ttl_remaining(SessionRef ref, const Grant& g) = 0;

  // Primary state, fenced by the grant's token.
  virtual Result<std::optional<std::string>> read(SessionRef ref, const Grant& g, std::string_view name) = 0;
  virtual Result<AttrMap> read_all(SessionRef ref, const Grant& g) = 0;
  virtual Status commit(SessionRef ref, const Grant& g, const ChangeSet& changes) = 0;

  // Revoke notifications for this process: wait until the epoch moves past `seen` or the deadline.
  virtual std::uint32_t notification_epoch() = 0;
  virtual void wait_notification(std::uint32_t seen, Clock::time_point deadline) = 0;
  virtual void interrupt_notification_wait() = 0;
};

}  // namespace sessionbroker::detail
