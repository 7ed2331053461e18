// The attached process: its backend, its local sessions and the revoke thread.
//
// Thread safety: sessions_ is guarded by mu_, callback_ by callback_mu_; the revoke thread only
// reads a copy of the session list. Process safety: valid only in the process that attached
// (fork_epoch_).
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "backend.hpp"
#include "fork_guard.hpp"
#include "local_session.hpp"
#include "sessionbroker/client.hpp"

namespace sessionbroker::detail {

class ClientImpl : public std::enable_shared_from_this<ClientImpl> {
 public:
  explicit ClientImpl(std::unique_ptr<Backend> backend);
  ~ClientImpl();

  // Starts the revoke thread and returns once it runs (its start-up allocations are done, so a
  // fork() right after attach cannot catch them half-way). REQUIRES: owned by a shared_ptr.
  void start();
  Status detach();
  // kDetached after detach, in a forked child, or once evicted. Inline: every release and every
  // attribute access asks, and the Status is built only when it fails (unusable).
  Status usable() const {
    if (forked() || detached_.load(std::memory_order_acquire) || backend_->evicted()) [[unlikely]] return unusable();
    return {};
  }
  bool forked() const { return forked_since(fork_epoch_); }  // this process is a child forked after attach
  Backend& backend() { return *backend_; }

  enum class Open { kExisting, kCreate, kEither };
  // The local session of `id`; kEither creates it if absent and says in `created` whether it did.
  Result<std::shared_ptr<LocalSession>> session(std::string_view id, Open how, std::uint64_t ttl_ms,
                                                bool* created = nullptr);
  // Drops a destroyed session from the list. REQUIRES: the caller holds a reference to `s`.
  void forget(LocalSession& s);
  void set_callback(RevokeCallback cb);
  // Tells the callback, if one is registered (nothing is built otherwise).
  void notify(RevokeEvent::Kind kind, const std::string& session_id, std::uint64_t token);
  // Whether a revoke callback is installed: a caller holding a session's mutex need not let go of
  // it to notify nobody (an event raised before on_revoke() returns may go unseen, as it would
  // have a moment earlier).
  bool has_callback() const { return has_callback_.load(std::memory_order_acquire); }
  // Releases cached process locks that no thread uses (lock records ran out). Returns how many.
  int release_idle_locks(const LocalSession* except);

 private:
  [[gnu::cold]] Status unusable() const;  // why usable() failed: always an error
  void revoke_loop();
  Status orphan();  // detach() in a forked child
  std::vector<std::shared_ptr<LocalSession>> snapshot_sessions();
  // Refills `out` (keeping its capacity) with the current sessions.
  void snapshot_sessions_into(std::vector<std::shared_ptr<LocalSession>>& out);

  std::unique_ptr<Backend> backend_;
  const std::uint64_t fork_epoch_;
  std::atomic<bool> detached_{false};
  std::atomic<bool> stopping_{false};
  std::thread revoke_thread_;
  std::mutex mu_;
  std::map<std::uint64_t, std::shared_ptr<LocalSession>> sessions_;  // GUARDED_BY(mu_), by SessionHandle::key
  std::mutex callback_mu_;
  RevokeCallback callback_;  // GUARDED_BY(callback_mu_)
  std::atomic<bool> has_callback_{false};  // stored after callback_, under callback_mu_
};

}  // namespace sessionbroker::detail
