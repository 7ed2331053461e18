#include "local_session.hpp"

#include <algorithm>
#include <utility>

#include <fmt/format.h>

#include "backend.hpp"
#include "client_impl.hpp"

namespace sessionbroker::detail {
namespace {


Status timeout() { return Status(ErrorCode::kTimeout, "lock not granted before the deadline"); }

}  // namespace

bool ThreadLockState::covers(std::string_view name) const {
  return whole || std::binary_search(attrs.begin(), attrs.end(), name, std::less<>{});
}

void ThreadLockState::assign_names(std::span<const std::string_view> names) {
  attrs.resize(names.size());  // keeps the strings' buffers of an earlier use
  for (std::size_t i = 0; i < names.size(); ++i) attrs[i].assign(names[i]);
  if (attrs.size() > 1) {
    std::sort(attrs.begin(), attrs.end());
    attrs.erase(std::unique(attrs.begin(), attrs.end()), attrs.end());
  }
}

LocalSession::AttrLock* LocalSession::find_attr(std::string_view name) {
  for (auto& a : attrs_)
    if (a.name == name) return &a;
  return nullptr;
}

bool LocalSession::locally_compatible(const ThreadLockState& t) const {
  if (t.whole) return t.mode == Mode::kExclusive ? users_ == 0 : !whole_exclusive_ && attr_exclusive_ == 0;
  if (whole_exclusive_ || (t.mode == Mode::kExclusive && whole_shared_ > 0)) return false;
  for (const auto& a : attrs_) {
    if (a.idle() || !t.covers(a.name)) continue;
    if (a.exclusive || t.mode == Mode::kExclusive) return false;
  }
  return true;
}

void LocalSession::take_local(const ThreadLockState& t) {
  ++users_;
  if (t.whole) {
    if (t.mode == Mode::kExclusive) whole_exclusive_ = true;
    else ++whole_shared_;
    return;
  }
  for (const auto& name : t.attrs) {
    AttrLock* l = find_attr(name);
    if (!l) l = &attrs_.emplace_back(AttrLock{name});
    if (t.mode == Mode::kExclusive) l->exclusive = true, ++attr_exclusive_;
    else ++l->shared;
  }
}

void LocalSession::drop_local(const ThreadLockState& t) {
  --users_;
  if (t.whole) {
    if (t.mode == Mode::kExclusive) whole_exclusive_ = false;
    else --whole_shared_;
    return;
  }
  for (const auto& name : t.attrs) {
    AttrLock* l = find_attr(name);
    if (!l) continue;
    if (t.mode == Mode::kExclusive) l->exclusive = false, --attr_exclusive_;
    else --l->shared;
  }
  if (attrs_.size() > kIdleAttrEntries)  // bounded memory for processes that touch many names
    std::erase_if(attrs_, [](const AttrLock& a) { return a.idle(); });
}

std::unique_ptr<ThreadLockState> LocalSession::new_state(std::span<const std::string_view> attrs, bool whole, Mode mode) {
  std::unique_ptr<ThreadLockState> t;
  // The lane's state first (mu_ is held, so the lane is closed and it is free to take): it is the
  // one the last lock through the lane used, so its copy of the session (ReadCopy) is the newest
  // this process has, and a read or commit under the new lock can use it while nothing was
  // committed since. The spares rotate, and their copies are older.
  if (lane_spare_) {
    t = std::move(lane_spare_);
  } else if (spare_.empty()) {
    t = std::make_unique<ThreadLockState>();
  } else {
    t = std::move(spare_.back());
    spare_.pop_back();
  }
  t->set_portion(attrs, whole, mode);
  return t;
}

std::unique_ptr<ThreadLockState> LocalSession::recycle(std::unique_ptr<ThreadLockState> t) {
  if (retired_ || spare_.size() >= kSpareStates) return t;
  // A spare keeps its references to this session and the client, so that the next lock need not
  // take them again (two atomic increments and two decrements per thread lock). The cycle this
  // makes is broken by drop_spares(), which the client calls before it lets go of this session.
  t->clear_use();
  spare_.push_back(std::move(t));
  return nullptr;
}

void LocalSession::drop_spares() {
  std::vector<std::unique_ptr<ThreadLockState>> spares;
  std::unique_ptr<ThreadLockState> lane;
  {
    Held lk(*this);
    retired_ = true;  // a lane lock still out (kAbsorbed) is destroyed at its unlock
    spares.swap(spare_);
    lane = std::move(lane_spare_);
    backend_.close_kept(keep_);  // the lane never opens again (retired_): no claim uses keep_ from here
  }
  // Destroyed here, with mu_ free: they may hold references to this session and to the client.
}

void LocalSession::drop_spares_in_child() {
  std::vector<std::unique_ptr<ThreadLockState>> spares;
  std::unique_ptr<ThreadLockState> lane;
  {
    std::unique_lock lk(mu_, std::try_to_lock);  // not Held: close_lane could wait on a parent's thread
    if (!lk) return;
    retired_ = true;
    spares.swap(spare_);
    const std::uint32_t v = lane_.load(std::memory_order_relaxed);
    if (v != kBusy && v != kTaken && v != kAbsorbed) {  // else a parent's thread had the lane at the fork
      lane_.store(kClosed, std::memory_order_relaxed);
      lane = std::move(lane_spare_);
    }
  }
}

Status LocalSession::names_error(std::span<const std::string_view> attrs, bool whole) {
  if (!whole && attrs.empty()) return Status(ErrorCode::kInvalidArgument, "lock needs at least one attribute");
  for (const auto& a : attrs) {
    if (a.empty()) return Status(ErrorCode::kInvalidArgument, "attribute name is empty");
    if (a.size() > kMaxAttrNameBytes)
      return Status(ErrorCode::kTooLarge, fmt::format("attribute name is {} bytes; the limit is {}", a.size(), kMaxAttrNameBytes));
  }
  return Status(ErrorCode::kInvalidArgument, "bad attribute names");  // not reached: names_valid was false
}

Result<std::unique_ptr<ThreadLockState>> LocalSession::lock_slow(std::span<const std::string_view> attrs, bool whole,
                                                                 Mode mode, Clock::time_point deadline, bool wait,
                                                                 bool busy) {
  // Checked before mu_ is taken: in a forked child mu_ may have been held by a parent's thread.
  if (Status st = client_.usable(); !st) return st;
  const Mode need = mode;
  std::unique_ptr<ThreadLockState> unkept;  // destroyed after lk lets go of mu_
  Held lk(*this);
  auto t = new_state(attrs, whole, mode);
  // The thread whose request brought the grant in uses it once even if a revoke request is already
  // pending (other processes were queued behind it): otherwise it would hand the grant straight on
  // and re-queue at the tail, breaking FIFO order and making no progress.
  bool just_acquired = false;
  for (;;) {
    // From here to take_local() mu_ stays held (Held closed the lane when it last took it), so
    // clearing the fresh mark first is safe.
    const bool fresh = just_acquired;
    just_acquired = false;
    if (fresh) {
      fresh_grant_ = false;
      notify_waiters();
    } else {
      observe_segment_flags(lk);
    }
    if (Status st = usable_locked(); !st) {
      unkept = recycle(std::move(t));
      return st;
    }
    const bool may_use = state_ == ProcState::kHeld && held_mode_ >= need && !lost_ && (fresh || !must_give_back());
    if (may_use && locally_compatible(*t)) {
      if (!t->session) {  // a new state; a spare one still has both
        t->session = shared_from_this();
        t->client = client_.shared_from_this();
      }
      t->grant = grant_;
      if (!take_lane_locked(*t)) take_local(*t);
      return t;
    }
    if (!wait) {
      if (Status st = busy_unless_free(may_use); !st) {
        unkept = recycle(std::move(t));
        return st;
      }
    }
    if (state_ == ProcState::kHeld && !may_use && idle()) {
      release_process_lock(lk);  // give back (revoked, lost, or too weak for this request)
      continue;
    }
    if (state_ == ProcState::kNone) {
      const bool try_first = !std::exchange(busy, false);
      if (Status st = acquire_process_lock(lk, need, deadline, wait, try_first); !st) {
        unkept = recycle(std::move(t));
        return st;
      }
      just_acquired = true;
      continue;
    }
    if (!lk.wait_until(deadline) && Clock::now() >= deadline) {
      unkept = recycle(std::move(t));
      return timeout();
    }
  }
}

Status LocalSession::busy_unless_free(bool may_use) const {
  if (state_ == ProcState::kNone) return {};
  if (state_ == ProcState::kHeld && !may_use && idle() && !revoke_seen_ && release_waiters_ == 0) return {};
  static const Status::Fixed kInTransit(ErrorCode::kBusy, "another thread of this process is acquiring or giving back the session's lock");
  static const Status::Fixed kConflict(ErrorCode::kBusy, "another thread of this process holds a conflicting lock on the session");
  static const Status::Fixed kAskedBack(ErrorCode::kBusy, "this process's lock on the session is asked back, or held in the other mode");
  if (state_ != ProcState::kHeld) return kInTransit;
  return may_use ? kConflict : kAskedBack;
}

Status LocalSession::usable_locked() const {
  if (detached_) return Status(ErrorCode::kDetached, "client is detached");
  if (destroyed_) return Status(ErrorCode::kNotFound, fmt::format("session '{}' was destroyed", id_));
  return {};
}

Status LocalSession::acquire_process_lock(Held& lk, Mode need, Clock::time_point deadline, bool wait, bool try_first) {
  // Uncontended on a quick backend: granted without letting go of mu_. A busy try left no trace
  // (it queued nothing and asked nobody), so the request then queues as if it had not been made.
  // A request that will wait tries the cheap way (Backend::try_acquire_cheap): a session in use
  // then costs it one S section, the queueing's, not a try's as well.
  // No try when a lane claim's try was just answered kBusy (Backend::acquire grants at once anyway
  // when the session is free by now).
  // Out of records, the idle locks of other sessions are given back with mu_ let go (their
  // mutexes are taken then), and the request goes the long way.
  std::optional<Result<Grant>> g;
  if (quick_ && try_first) {
    g.emplace(wait ? backend_.try_acquire_cheap(handle_, need) : backend_.try_acquire(handle_, need));
    if (!*g && ((wait && g->code() == ErrorCode::kBusy) || g->code() == ErrorCode::kCapacityExceeded)) g.reset();
  }
  if (!g) {
    state_ = ProcState::kAcquiring;
    lk.unlock();
    auto get = [&] { return wait ? backend_.acquire(handle_, need, deadline) : backend_.try_acquire(handle_, need); };
    g.emplace(get());
    if (!*g && g->code() == ErrorCode::kCapacityExceeded && client_.release_idle_locks(this) > 0) g.emplace(get());
    lk.lock();
  }
  if (*g) {
    state_ = ProcState::kHeld;
    grant_ = **g;
    held_mode_ = need;
    revoke_seen_ = lost_ = false;
    fresh_grant_ = true;
    // A request raised at grant time (others were queued behind us) is not sent to the revoke
    // thread (LockTable::grant_waiters): this thread notices it, now and at its unlock.
    observe_segment_flags(lk);
  } else {
    state_ = ProcState::kNone;
    if (g->code() == ErrorCode::kNotFound) destroyed_ = true;
  }
  notify_waiters();
  return g->status();
}

void LocalSession::release_process_lock(Held& lk) {
  state_ = ProcState::kReleasing;
  const Grant g = grant_;
  const bool was_revoked = revoke_seen_ && !lost_;
  // kStaleToken when it was broken meanwhile: released either way. A quick backend releases under
  // mu_; the callback always runs with mu_ let go (others wait for kReleasing meanwhile).
  const bool quick = quick_;
  if (quick) (void)backend_.release(handle_, g);
  if (!quick || was_revoked) {
    lk.unlock();
    if (!quick) (void)backend_.release(handle_, g);
    if (was_revoked) client_.notify(RevokeEvent::Kind::kReleased, id_, g.token);
    lk.lock();
  }
  state_ = ProcState::kNone;
  grant_ = {};
  revoke_seen_ = lost_ = false;
  notify_waiters();
}

Status LocalSession::commit(ThreadLockState& t) {
  if (t.changes.empty()) return {};  // unlock's path: nothing to publish, nothing to check
  std::lock_guard c(commit_mu_);
  Status st = backend_.commit(handle_, t.grant, t.changes, t.copy_slot());
  t.changes.clear();
  return st;
}

Status LocalSession::confirm_and_commit(ThreadLockState& t) {
  if (t.changes.empty())
    return backend_.grant_status(t.grant) == GrantStatus::kLost
               ? Status(ErrorCode::kStaleToken, fmt::format("token {} no longer holds the session lock", t.grant.token))
               : Status{};
  return commit(t);
}

Status LocalSession::unlock_slow(std::unique_ptr<ThreadLockState> t) {
  const Status usable = client_.usable();
  Status st = usable;
  if (usable) {
    st = commit(*t);
    if (t->via_lane && return_lane(t)) return st;  // marks used_
    used_.store(true, std::memory_order_relaxed);
  }
  // A state that is not kept may hold the last references to the client and to this session: it
  // dies, if it does, only after mu_ is let go (the client's destructor detaches every session,
  // taking their mutexes), and nothing here touches a member after that.
  std::unique_ptr<ThreadLockState> unkept;
  Held lk(*this);  // counts `t` in users_ if it still held the lane
  drop_local(*t);
  if (t->via_lane) {  // lane_ is kAbsorbed and `t` was its holder: the lane gets its state back
    t->clear_use();
    if (retired_) unkept = std::move(t);
    else lane_spare_ = std::move(t);
    lane_.store(kClosed, std::memory_order_relaxed);
  } else {
    unkept = recycle(std::move(t));
  }
  // A request raised while this grant was being taken (the revoke thread saw kAcquiring and moved
  // on) is noticed here, by the thread that used the grant.
  observe_segment_flags(lk);
  if (idle() && state_ == ProcState::kHeld && must_give_back()) release_process_lock(lk);
  maybe_open_lane();
  notify_waiters();
  return st;
}

Status LocalSession::destroy_with(ThreadLockState& t) {
  Held lk(*this);
  drop_local(t);
  if (t.via_lane) {  // its state dies with the caller's lock: the lane stays closed for good
    t.via_lane = false;
    lane_.store(kClosed, std::memory_order_relaxed);
  }
  Status st = backend_.destroy_session(handle_, &grant_);  // fenced by the grant's token
  state_ = ProcState::kNone;
  grant_ = {};
  destroyed_ = st.is_ok();
  notify_waiters();
  return st;
}

Status LocalSession::release_slow(Clock::time_point deadline) {
  Held lk(*this);
  if (detached_) return Status(ErrorCode::kDetached, "client is detached");
  if (state_ != ProcState::kHeld) {
    maybe_open_lane();
    return Status(ErrorCode::kNotHeld, fmt::format("session '{}' is not locked by this process", id_));
  }
  ++release_waiters_;  // one count per waiting call: a call that times out withdraws only its own
  while (!idle() && state_ == ProcState::kHeld) {
    if (!lk.wait_until(deadline) && !idle()) {
      --release_waiters_;
      maybe_open_lane();
      notify_waiters();
      return timeout();
    }
  }
  if (state_ == ProcState::kHeld) release_process_lock(lk);
  --release_waiters_;
  maybe_open_lane();
  notify_waiters();
  return {};
}

// Held, not a bare lock of mu_: a lane claim or release may be changing state_ and grant_.
std::uint64_t LocalSession::token() {
  Held lk(*this);
  const std::uint64_t token = state_ == ProcState::kHeld ? grant_.token : 0;
  maybe_open_lane();
  return token;
}

bool LocalSession::held() {
  Held lk(*this);
  const bool held = state_ == ProcState::kHeld && !lost_;
  maybe_open_lane();
  return held;
}

void LocalSession::observe_segment_flags(Held& lk) {
  if (state_ != ProcState::kHeld || lost_) return;
  const Grant g = grant_;
  const GrantStatus status = backend_.grant_status(g);
  if (status == GrantStatus::kHeld || (status == GrantStatus::kRevokeRequested && revoke_seen_)) return;
  const bool lost = status == GrantStatus::kLost;
  (lost ? lost_ : revoke_seen_) = true;
  if (!client_.has_callback()) return;  // every handoff's grantee comes here: no round trip of mu_ for nobody
  const RevokeEvent::Kind kind = lost ? RevokeEvent::Kind::kLost : RevokeEvent::Kind::kRequested;
  lk.unlock();
  client_.notify(kind, id_, g.token);
  lk.lock();
}

void LocalSession::on_notification() {
  if (used_.load(std::memory_order_relaxed)) {  // a use racing this store is covered by the touch after it
    used_.store(false, std::memory_order_relaxed);
    backend_.touch(handle_);
  }
  Held lk(*this);
  observe_segment_flags(lk);
  if (state_ == ProcState::kHeld && must_give_back() && idle()) release_process_lock(lk);
  maybe_open_lane();
}

bool LocalSession::release_if_idle() {
  Held lk(*this);
  const bool dropped = backend_.drop_kept(keep_);  // the lane keeps another when it runs again
  if (state_ != ProcState::kHeld || !idle()) {
    maybe_open_lane();
    return dropped;
  }
  release_process_lock(lk);
  maybe_open_lane();
  return true;
}

void LocalSession::detach() {
  Held lk(*this);
  detached_ = true;
  if (state_ == ProcState::kHeld) release_process_lock(lk);
  notify_waiters();
}

}  // namespace sessionbroker::detail
