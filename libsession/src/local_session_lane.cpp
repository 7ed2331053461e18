// The fast lane of LocalSession: a thread lock on a cached process lock without the session's
// mutex, one thread at a time. The protocol (lane states, who moves lane_ between them, what each
// state publishes) is written at the top of local_session.hpp.
#include <thread>

#include "backend.hpp"
#include "client_impl.hpp"
#include "local_session.hpp"

namespace sessionbroker::detail {

std::unique_ptr<ThreadLockState> LocalSession::try_lane(std::span<const std::string_view> attrs, bool whole,
                                                        Mode mode) {
  std::uint32_t open = lane_.load(std::memory_order_relaxed);
  if (open != kOpenExclusive && (open != kOpenShared || mode != Mode::kShared)) return nullptr;
  if (!lane_.compare_exchange_strong(open, kBusy, std::memory_order_acquire, std::memory_order_relaxed)) return nullptr;
  // A revoke request or a loss flagged in the segment is for the mutex side to notice and act on.
  if (backend_.grant_status(grant_) != GrantStatus::kHeld) {
    lane_.store(open, std::memory_order_release);
    return nullptr;
  }
  std::unique_ptr<ThreadLockState> t = std::move(lane_spare_);
  t->set_portion(attrs, whole, mode);
  t->grant = grant_;
  t->via_lane = true;
  lane_holder_ = t.get();
  lane_.store(kTaken, std::memory_order_release);
  return t;
}

bool LocalSession::return_lane(std::unique_ptr<ThreadLockState>& t) {
  // A flag raised while the lock was held: the mutex side releases at once, as a waiter wants.
  if (backend_.grant_status(t->grant) != GrantStatus::kHeld) return false;
  std::uint32_t taken = kTaken;
  if (!lane_.compare_exchange_strong(taken, kBusy, std::memory_order_acquire, std::memory_order_relaxed)) return false;
  t->via_lane = false;
  t->changes.clear();
  t->grant = {};
  lane_holder_ = nullptr;
  lane_spare_ = std::move(t);
  lane_.store(lane_open_, std::memory_order_release);
  return true;
}

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
      default:  // kOpenShared, kOpenExclusive
        if (lane_.compare_exchange_weak(v, kClosed, std::memory_order_acquire)) return;
        continue;
    }
  }
}

void LocalSession::maybe_open_lane() {
  if (lane_.load(std::memory_order_relaxed) != kClosed || state_ != ProcState::kHeld || lost_ || must_give_back() ||
      !idle() || detached_ || destroyed_ || retired_)
    return;
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
  lane_open_ = held_mode_ == shm::LockMode::kExclusive ? kOpenExclusive : kOpenShared;
  lane_.store(lane_open_, std::memory_order_release);
}

}  // namespace sessionbroker::detail
