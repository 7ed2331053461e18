// The fast lane of LocalSession, its mutex side: closing and opening it. The claim and return
// ends are inline in local_session.hpp, under the protocol (lane states, who moves lane_ between
// them, what each state publishes) written at the top of that file.
#include <thread>

#include "backend.hpp"
#include "client_impl.hpp"
#include "local_session.hpp"

namespace sessionbroker::detail {

void LocalSession::close_lane() {
  for (;;) {
    std::uint32_t v = lane_.load(std::memory_order_acquire);
    switch (v) {
      case kClosed:
      case kAbsorbed:
        return;
      case kBusy:  // a claimer or returner is between two stores
        std::this_thread::yield();
        continue;
      case kTaken:
        if (lane_.compare_exchange_weak(v, kAbsorbed, std::memory_order_acquire)) {
          take_local(*lane_holder_);
          lane_holder_ = nullptr;
          return;
        }
        continue;
      default:  // kOpenShared, kOpenExclusive, kVacant
        if (lane_.compare_exchange_weak(v, kClosed, std::memory_order_acquire)) return;
        continue;
    }
  }
}

std::uint32_t LocalSession::lane_to_open() const {
  if (lane_.load(std::memory_order_relaxed) != kClosed || detached_ || destroyed_ || retired_ || !idle() ||
      release_waiters_ > 0)
    return kClosed;
  if (state_ == ProcState::kHeld && !lost_ && !revoke_seen_) return held_mode_ == Mode::kExclusive ? kOpenExclusive : kOpenShared;
  return state_ == ProcState::kNone && quick_ ? kVacant : kClosed;
}

void LocalSession::maybe_open_lane() {
  const std::uint32_t open = lane_to_open();
  // kVacant only with a state already made: the revoke thread passes every session of the
  // process, and one never locked here gets none for it.
  if (open == kClosed || (open == kVacant && !lane_spare_)) return;
  if (!lane_spare_) {
    if (spare_.empty()) {
      lane_spare_ = std::make_unique<ThreadLockState>();
    } else {
      lane_spare_ = std::move(spare_.back());
      spare_.pop_back();
    }
    if (!lane_spare_->session) {
      lane_spare_->session = shared_from_this();
      lane_spare_->client = client_.shared_from_this();
    }
  }
  if (open == kVacant) {
    lane_.store(kVacant, std::memory_order_release);
    return;
  }
  lane_words_ = backend_.grant_words(grant_);
  if (lane_words_.state == nullptr) return;
  lane_open_ = open;
  lane_.store(lane_open_, std::memory_order_release);
}

// The thread lock lock_slow is about to grant goes out through the lane when the lane could open
// now: straight from kClosed to kTaken under mu_ (never through kOpen*, where another thread
// could claim it first). Its unlock then gives it back without mu_ (return_lane), and the lane is
// open for the next one. lane_spare_ must be empty while kTaken: a spare one goes to spare_.
bool LocalSession::take_lane_locked(ThreadLockState& t) {
  const std::uint32_t open = lane_to_open();
  if (open != kOpenExclusive && open != kOpenShared) return false;
  if (lane_spare_) {
    if (spare_.size() >= kSpareStates) return false;
    lane_spare_->clear_use();
    spare_.push_back(std::move(lane_spare_));
  }
  lane_words_ = backend_.grant_words(grant_);
  if (lane_words_.state == nullptr) return false;
  lane_open_ = open;
  t.via_lane = true;
  lane_holder_ = &t;
  lane_.store(kTaken, std::memory_order_release);
  return true;
}

// kVacant -> kBusy: this thread owns the process lock's members (every mu_ holder waits kBusy out)
// and lane_spare_. Backend::try_acquire_kept answers at once on a quick backend and leaves no trace
// when it fails (on shared memory an exclusive claim is the fast path or kBusy); then the lane is
// kVacant again and lock_slow takes over (queueing at once if kBusy, trying first if it fails).
std::unique_ptr<ThreadLockState> LocalSession::claim_vacant(std::span<const std::string_view> attrs, bool whole,
                                                            Mode mode, bool& busy) {
  if (forked_since(fork_epoch_)) return nullptr;
  std::uint32_t vacant = kVacant;
  if (!lane_.compare_exchange_strong(vacant, kBusy, std::memory_order_acquire, std::memory_order_relaxed)) return nullptr;
  // Opened once per session (a claim runs only before drop_spares() closes it for good).
  if (!keep_.open) (void)backend_.open_kept(keep_);
  auto g = backend_.try_acquire_kept(handle_, mode, keep_);
  // The words go straight to lane_words_ (the lane is ours: kBusy): through a local, GCC joins
  // them with the failure path's through the stack and reads them back as one 16-byte load that
  // store forwarding cannot serve (bench/results/hot-notes.md, "Store forwarding").
  if (g) lane_words_ = backend_.grant_words(*g);
  if (!g || lane_words_.state == nullptr) {
    if (g) (void)backend_.release_kept(handle_, *g, keep_);  // not reached on shared memory: a grant has its words
    busy = !g && g.code() == ErrorCode::kBusy;
    lane_.store(kVacant, std::memory_order_release);
    return nullptr;
  }
  state_ = ProcState::kHeld;
  grant_ = *g;
  held_mode_ = mode;
  revoke_seen_ = lost_ = false;
  lane_open_ = mode == Mode::kExclusive ? kOpenExclusive : kOpenShared;
  return hand_out_lane(attrs, whole, mode);
}

// kOpen* -> kBusy: the process lock is held, idle, not asked back as far as this process has seen,
// and no release() waits (the lane opens only then, and only mu_ holders change that). A revoke
// request raised in the segment meanwhile is answered by this release. No thread waits on cv_ for
// this step: the lane opened after the last change a waiter waits for was notified (a waiter
// retakes mu_, which closes the lane, before it looks again). The lane then stays kVacant: the
// conditions of lane_to_open() for it are those of kOpen* with the lock given back.
bool LocalSession::release_lane() {
  std::uint32_t open = lane_.load(std::memory_order_relaxed);
  if ((open != kOpenExclusive && open != kOpenShared) || !quick_ || forked_since(fork_epoch_)) return false;
  if (!lane_.compare_exchange_strong(open, kBusy, std::memory_order_acquire, std::memory_order_relaxed)) return false;
  (void)backend_.release_kept(handle_, grant_, keep_);  // kStaleToken when broken meanwhile: released either way
  state_ = ProcState::kNone;
  grant_ = {};
  revoke_seen_ = lost_ = false;
  lane_.store(kVacant, std::memory_order_release);
  return true;
}

}  // namespace sessionbroker::detail
