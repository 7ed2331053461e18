#include "client_impl.hpp"

#include <future>

#include "fork_guard.hpp"

namespace sessionbroker::detail {
namespace {
// The revoke thread sleeps on the client's notify word; this bounds a sleep only as a backstop.
constexpr auto kRevokeThreadSlice = std::chrono::seconds(1);
}  // namespace

ClientImpl::ClientImpl(std::unique_ptr<Backend> backend) : backend_(std::move(backend)), fork_epoch_(fork_epoch()) {}

ClientImpl::~ClientImpl() { (void)detach(); }

void ClientImpl::start() {
  std::promise<void> running;
  auto started = running.get_future();
  revoke_thread_ = std::thread([this, &running] {
    running.set_value();
    revoke_loop();
  });
  started.wait();
}

// The three conditions only go one way (a detach or a fork is for good; an evicted registration is
// never live again), so the reason found here is the one usable() saw.
Status ClientImpl::unusable() const {
  if (forked_since(fork_epoch_))
    return Status(ErrorCode::kDetached, "client handle used in a forked child: call Client::attach in the child");
  if (detached_.load(std::memory_order_acquire)) return Status(ErrorCode::kDetached, "client is detached");
  return Status(ErrorCode::kDetached, "client was evicted by an administrator (sessionctl evict-client): detach and attach again");
}

// Order matters: the backend is closed first, so that no call of another thread is inside the
// segment (a commit half done, a waiter in a queue) when the registration is freed at the end.
Status ClientImpl::detach() {
  if (forked_since(fork_epoch_)) return orphan();
  if (detached_.exchange(true)) return {};
  backend_->close();  // from here every backend call fails with kDetached; waiters are called back
  stopping_ = true;
  backend_->interrupt_notification_wait();
  if (revoke_thread_.joinable()) {
    if (revoke_thread_.get_id() == std::this_thread::get_id()) revoke_thread_.detach();  // from a callback
    else revoke_thread_.join();
  }
  for (auto& s : snapshot_sessions()) s->detach();
  std::map<std::uint64_t, std::shared_ptr<LocalSession>> left;  // those, and any made by a call that raced this detach
  {
    std::lock_guard lk(mu_);
    left.swap(sessions_);
  }
  for (auto& [key, s] : left) s->drop_spares();
  // Every session this client made is let go of (drop_spares: here, or by the thread that replaced
  // or forgot it), so the backend's detach, which waits for the sessions' open Kept places
  // (Backend::open_kept), returns once those threads are done. A session made after the swap
  // above never opens one: it cannot lock, this client being detached.
  return backend_->detach();
}

// A forked child's copy: the registration, the revoke thread and the segment's state are the
// parent's. It touches none of them (the backend refuses every call in a child), and breaks the
// references its sessions' spare states keep, so that dropping the copy frees it. A mutex that a
// thread of the parent held at the fork stays locked in the child: try_lock, and leave what it
// guards rather than wait for ever.
Status ClientImpl::orphan() {
  if (detached_.exchange(true)) return {};
  if (revoke_thread_.joinable()) revoke_thread_.detach();  // no such thread exists in the child
  std::map<std::uint64_t, std::shared_ptr<LocalSession>> sessions;
  {
    std::unique_lock lk(mu_, std::try_to_lock);
    if (lk) sessions.swap(sessions_);
  }
  for (auto& [slot, s] : sessions) s->drop_spares_in_child();
  return {};
}

std::vector<std::shared_ptr<LocalSession>> ClientImpl::snapshot_sessions() {
  std::vector<std::shared_ptr<LocalSession>> out;
  snapshot_sessions_into(out);
  return out;
}

void ClientImpl::snapshot_sessions_into(std::vector<std::shared_ptr<LocalSession>>& out) {
  out.clear();
  std::lock_guard lk(mu_);
  for (auto& [key, s] : sessions_) out.push_back(s);
}

Result<std::shared_ptr<LocalSession>> ClientImpl::session(std::string_view id, Open how, std::uint64_t ttl_ms,
                                                          bool* created) {
  if (Status st = usable(); !st) return st;
  bool made = how == Open::kCreate;
  auto handle = how == Open::kExisting ? backend_->open_session(id)
             : how == Open::kCreate ? backend_->create_session(id, ttl_ms)
                                    : backend_->open_or_create_session(id, ttl_ms, made);
  if (!handle) return handle.status();
  if (created) *created = made;
  std::shared_ptr<LocalSession> replaced;  // an earlier session under the same key, destroyed since
  std::shared_ptr<LocalSession> current;
  {
    std::lock_guard lk(mu_);
    auto& known = sessions_[handle->key];
    if (!known || known->handle().generation != handle->generation) {
      replaced = std::move(known);
      known = std::make_shared<LocalSession>(*this, *backend_, std::string(id), *handle);
    }
    current = known;
  }
  if (replaced) replaced->drop_spares();
  return current;
}

void ClientImpl::forget(LocalSession& s) {
  {
    std::lock_guard lk(mu_);
    auto it = sessions_.find(s.handle().key);
    if (it != sessions_.end() && it->second.get() == &s) sessions_.erase(it);
  }
  s.drop_spares();
}

void ClientImpl::set_callback(RevokeCallback cb) {
  std::lock_guard lk(callback_mu_);
  callback_ = std::move(cb);
  has_callback_.store(static_cast<bool>(callback_), std::memory_order_release);
}

void ClientImpl::notify(RevokeEvent::Kind kind, const std::string& session_id, std::uint64_t token) {
  std::lock_guard lk(callback_mu_);
  if (callback_) callback_(RevokeEvent{kind, session_id, token});
}

int ClientImpl::release_idle_locks(const LocalSession* except) {
  int n = 0;
  for (auto& s : snapshot_sessions())
    if (s.get() != except && s->release_if_idle()) ++n;
  return n;
}

// Allocates nothing once `scan` has grown to the session count: a thread that allocates while
// another thread forks can leave the child's allocator locked (sanitizer runtimes are not fork-safe).
void ClientImpl::revoke_loop() {
  std::vector<std::shared_ptr<LocalSession>> scan;
  while (!stopping_.load(std::memory_order_acquire)) {
    const std::uint32_t seen = backend_->notification_epoch();
    snapshot_sessions_into(scan);
    for (auto& s : scan) s->on_notification();
    scan.clear();
    if (stopping_.load(std::memory_order_acquire)) break;
    backend_->wait_notification(seen, Clock::now() + kRevokeThreadSlice);
  }
}

}  // namespace sessionbroker::detail
