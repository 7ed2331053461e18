// sessionbroker client library: locked access to shared session state from many processes.
//
//   auto client = sessionbroker::Client::attach("sessionbroker");         // register this process
//   auto session = client->open("user:42");                               // or create()
//   auto lock = session->lock({"cart"}, Mode::kExclusive, in(100ms));    // thread lock + token
//   auto cart = lock->get("cart");                                       // committed value
//   lock->put("cart", "...");                                            // buffered in-process
//   lock->unlock();                                                      // commit, then release
//
// Locks are two-level. The process holds a lock on the session (shared or exclusive, with a
// fencing token) and keeps it after its threads are done (lock caching) until another process
// queues for the session and the store sends a revoke request; the process then releases as soon as
// its threads let go. Threads lock attributes (or the whole session) inside the process.
//
// Thread safety: Client, Session and SessionLock may be used from any thread; a SessionLock
// belongs to the thread that uses it (it is movable, not shared). Process safety: a Client is
// valid only in the process that attached it; after fork() the child must attach its own.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "sessionbroker/error.hpp"
#include "sessionbroker/export.hpp"

namespace sessionbroker {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;
// A deadline `d` from now, in any unit that converts to the clock's. Saturates instead of
// overflowing: a `d` too long to add to now (milliseconds::max(), hours::max()) gives
// Deadline::max(), a wait without end; a `d` reaching back past the clock's epoch gives the epoch.
template <class Rep, class Period,
          class = typename std::enable_if<std::is_convertible<std::chrono::duration<Rep, Period>, Clock::duration>::value>::type>
inline Deadline in(std::chrono::duration<Rep, Period> d) {
  using Wide = std::chrono::duration<typename std::common_type<Rep, Clock::rep>::type, Period>;
  const Deadline now = Clock::now();
  const Wide w = d;
  // duration_cast rounds towards zero, so a `w` within these bounds converts and adds exactly.
  if (w > std::chrono::duration_cast<Wide>(Deadline::max() - now)) return Deadline::max();
  if (w < std::chrono::duration_cast<Wide>(Deadline() - now)) return Deadline();
  return now + std::chrono::duration_cast<Clock::duration>(w);
}

enum class Mode { kShared, kExclusive };

// Told to the callback registered with Client::on_revoke.
struct RevokeEvent {
  enum class Kind {
    kRequested,  // another process queued: the lock will be released once this process's threads are done
    kReleased,   // released in answer to a request
    kLost,       // taken away by force (revoke deadline, break-lock, destroy): the token is stale
  };
  Kind kind;
  std::string session_id;
  std::uint64_t token;
};
using RevokeCallback = std::function<void(const RevokeEvent&)>;

// SessionLock::ttl_remaining() of a session that never expires (its TTL is 0).
inline constexpr std::chrono::milliseconds kNeverExpires{-1};

namespace detail {
class ClientImpl;
class LocalSession;
struct ThreadLockState;
struct CApi;  // the C API (sessionbroker.h) locks from arrays of names without copying them
}  // namespace detail

class SessionLock;

// A handle to one session, shared by all threads of the process. Cheap to copy.
class SESSIONBROKER_EXPORT Session {
 public:
  const std::string& id() const;

  // Locks the named attributes for the calling thread (all or none; no deadlock whatever the order).
  Result<SessionLock> lock(const std::vector<std::string>& attrs, Mode mode, Deadline deadline);
  Result<SessionLock> lock(std::initializer_list<std::string_view> attrs, Mode mode, Deadline deadline);
  // Locks the whole session for the calling thread.
  Result<SessionLock> lock_all(Mode mode, Deadline deadline);
  // Without waiting: granted at once, else kBusy. A busy try leaves no trace: it queues nothing in
  // the store and asks no holder to release. It is busy when another process holds the session in
  // a conflicting mode or is queued for it, when a thread of this process holds a conflicting
  // portion, and when this process's lock is being acquired, given back or asked back.
  Result<SessionLock> try_lock(const std::vector<std::string>& attrs, Mode mode);
  Result<SessionLock> try_lock(std::initializer_list<std::string_view> attrs, Mode mode);
  Result<SessionLock> try_lock_all(Mode mode);

  // Gives the process-level lock back as soon as no thread holds a lock on the session.
  // kNotHeld when the process does not hold it.
  Status release(Deadline deadline);
  // The process-level lock's token, or 0 when not held.
  std::uint64_t token() const;
  bool held() const;
  // The pids of the processes holding the session's process-level lock now: one exclusive holder
  // or the shared holders (this process among them if it holds it), empty when free. A snapshot
  // for messages and tools ("held by pid 1234"): a holder may release right after.
  Result<std::vector<std::int32_t>> holder_pids() const;

 private:
  friend class detail::ClientImpl;
  friend class Client;
  friend struct detail::CApi;
  Session(std::shared_ptr<detail::ClientImpl> client, std::shared_ptr<detail::LocalSession> local);
  // `names` points at `count` names (this header stays C++17: no std::span).
  Result<SessionLock> lock_names(const std::string_view* names, std::size_t count, bool whole, Mode mode,
                                 Deadline deadline);
  Result<SessionLock> try_lock_names(const std::string_view* names, std::size_t count, bool whole, Mode mode);
  // lock_names (wait) or try_lock_names, not inlined: for detail::CApi.
  Result<SessionLock> lock_or_try(const std::string_view* names, std::size_t count, bool whole, Mode mode,
                                  Deadline deadline, bool wait);
  std::shared_ptr<detail::ClientImpl> client_;
  std::shared_ptr<detail::LocalSession> local_;
};

// A thread's lock on part of a session. Reads see the committed state plus this lock's own
// uncommitted writes; writes stay in the process until commit() or unlock(), then become visible
// to other processes atomically. Every access carries the process lock's token: once the lock was
// lost, it fails with kStaleToken and returns no data.
class SESSIONBROKER_EXPORT SessionLock {
 public:
  SessionLock(SessionLock&&) noexcept;
  SessionLock& operator=(SessionLock&&) noexcept;
  ~SessionLock();  // unlock(), ignoring its status

  std::uint64_t token() const;
  Mode mode() const;
  // nullopt when the attribute does not exist.
  Result<std::optional<std::string>> get(std::string_view name);
  // Every attribute this lock covers (all of them for lock_all).
  Result<std::map<std::string, std::string>> get_all();
  Status put(std::string_view name, std::string_view value);  // REQUIRES exclusive mode
  Status erase(std::string_view name);                        // REQUIRES exclusive mode
  Status commit();
  // Commits, then releases the thread lock. The process keeps its lock (cached) unless asked for it.
  Status unlock();
  // Drops the uncommitted writes, then unlocks (nothing is published).
  Status discard();
  bool locked() const { return state_ != nullptr; }

  // Expiry of the held session, fenced like every access (kStaleToken once the lock was lost,
  // and nothing changes). set_ttl: the idle time after which the broker expires the session (zero
  // = the segment's default), counted from now. touch: the idle clock restarts now. ttl_remaining:
  // what is left of it, counted from the session's last recorded use (a thread unlock is recorded
  // within a second), zero when past, kNeverExpires when the TTL is 0. A held session is never
  // expired: the broker asks its holder for it back first.
  Status set_ttl(std::chrono::milliseconds ttl);
  Status touch();
  Result<std::chrono::milliseconds> ttl_remaining();
  // Destroys the session. REQUIRES an exclusive lock on the whole session (lock_all), else
  // kInvalidArgument and the lock stays. Otherwise the lock is consumed whatever the result:
  // kStaleToken (nothing destroyed) when it was lost meanwhile.
  Status destroy();

 private:
  friend class detail::LocalSession;
  friend class Client;
  friend class Session;
  explicit SessionLock(std::unique_ptr<detail::ThreadLockState> state);
  std::unique_ptr<detail::ThreadLockState> state_;
};

// What Client::open_or_create() gives: the session, and whether this call created it.
struct OpenedSession {
  Session session;
  bool created;
};

class SESSIONBROKER_EXPORT Client {
 public:
  // Registers this process with the segment's client table. Starts the revoke thread.
  static Result<std::unique_ptr<Client>> attach(const std::string& segment);
  ~Client();  // detach()

  // Releases every lock and queue entry of this process and unregisters it. Handles fail with
  // kDetached afterwards. Idempotent.
  Status detach();

  // ttl: idle time after which the broker expires the session; zero = the segment's default.
  Result<Session> create(std::string_view id, std::chrono::milliseconds ttl = {});
  Result<Session> open(std::string_view id);
  // Opens the session, creating it (with `ttl`) if absent: race-free, so processes doing it at
  // once on one id all succeed and exactly one of them creates it.
  Result<OpenedSession> open_or_create(std::string_view id, std::chrono::milliseconds ttl = {});
  // Takes the session's exclusive lock (revoking holders politely), then destroys it.
  Status destroy(std::string_view id, Deadline deadline);
  Result<std::vector<std::string>> list();

  // Called from the revoke thread; keep it short and do not block on the session in it.
  void on_revoke(RevokeCallback callback);

  // Limits of this segment, for callers that validate early.
  std::uint32_t max_value_bytes() const;

 private:
  explicit Client(std::shared_ptr<detail::ClientImpl> impl);
  std::shared_ptr<detail::ClientImpl> impl_;
};

}  // namespace sessionbroker
