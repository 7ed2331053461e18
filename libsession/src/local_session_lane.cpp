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
      default:  // kOpenShared, kOpenExclusive
        if (lane_.compare_exchange_weak(v, kClosed, std::memory_order_acquire)) return;
        continue;
    }
  }
}

bool LocalSession::lane_may_open() const {
  return lane_.load(std::memory_order_relaxed) == kClosed && state_ == ProcState::kHeld && !lost_ &&
         !must_give_back() && idle() && !detached_ && !destroyed_ && !retired_;
}

void LocalSession::maybe_open_lane() {
  if (!lane_may_open()) return;
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
  lane_words_ = backend_.grant_words(grant_);
  if (lane_words_.state == nullptr) return;
  lane_open_ = held_mode_ == Mode::kExclusive ? kOpenExclusive : kOpenShared;
  lane_.store(lane_open_, std::memory_order_release);
}

// The thread lock lock_slow is about to grant goes out through the lane when the lane could open
// now: straight from kClosed to kTaken under mu_ (never through kOpen*, where another thread
// could claim it first). Its unlock then gives it back without mu_ (return_lane), and the lane is
// open for the next one. lane_spare_ must be empty while kTaken: a spare one goes to spare_.
bool LocalSession::take_lane_locked(ThreadLockState& t) {
  if (!lane_may_open()) return false;
  if (lane_spare_) {
    if (spare_.size() >= kSpareStates) return false;
    lane_spare_->clear_use();
    spare_.push_back(std::move(lane_spare_));
  }
  lane_words_ = backend_.grant_words(grant_);
  if (lane_words_.state == nullptr) return false;
  lane_open_ = held_mode_ == Mode::kExclusive ? kOpenExclusive : kOpenShared;
  t.via_lane = true;
  lane_holder_ = &t;
  lane_.store(kTaken, std::memory_order_release);
  return true;
}

}  // namespace sessionbroker::detail
