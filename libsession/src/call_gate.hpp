// The calls of one attached process into its segment, counted while in flight, and the gate a
// detach closes before it reclaims anything: after close_and_drain() returns, no thread of the
// process is inside the segment on the client's behalf, so the reclaim cannot free a pending blob
// a commit is still writing, nor a lock record a waiter still sleeps on (issue 12, findings 1-2).
//
// Thread safety: every method may be called from any thread. One word holds the count (low 31
// bits) and the closed bit, so entering and seeing "closed" is one atomic step: a call either
// entered before the gate closed (and is drained) or sees it closed (and never touches the segment).
// Cost: two uncontended atomic read-modify-writes per call. A claim of LocalSession's fast lane
// from kVacant skips them: it holds a long-lived pass on a second gate (try_enter/leave, one per
// session: ShmBackend's kept_gate_) that the detach drains before it reclaims.
#pragma once

#include <atomic>
#include <cstdint>

namespace sessionbroker::detail {

class CallGate {
 public:
  // RAII: a call in flight. `entered()` is false when the gate was closed: do nothing then.
  class Pass {
   public:
    explicit Pass(CallGate& gate) : gate_(gate.try_enter() ? &gate : nullptr) {}
    Pass(const Pass&) = delete;
    Pass& operator=(const Pass&) = delete;
    ~Pass() {
      if (gate_) gate_->leave();
    }
    bool entered() const { return gate_ != nullptr; }

   private:
    CallGate* gate_;
  };

  // A pass without the scope, for one that outlives a call (ShmBackend's open Kept): false when
  // the gate was closed; else the caller calls leave() once, later.
  bool try_enter() {
    if ((word_.fetch_add(1, std::memory_order_acquire) & kClosed) == 0) return true;
    leave();
    return false;
  }
  void leave() {
    if (word_.fetch_sub(1, std::memory_order_release) == kClosed + 1) word_.notify_all();
  }

  // Closes the gate. Returns false if it was closed already (by another thread's detach).
  bool close() { return (word_.fetch_or(kClosed, std::memory_order_acq_rel) & kClosed) == 0; }
  bool closed() const { return (word_.load(std::memory_order_acquire) & kClosed) != 0; }
  // REQUIRES: close() was called. Returns once every call that entered has left.
  void drain() {
    for (std::uint32_t v = word_.load(std::memory_order_acquire); v != kClosed; v = word_.load(std::memory_order_acquire))
      word_.wait(v, std::memory_order_acquire);
  }

 private:
  static constexpr std::uint32_t kClosed = 1u << 31;
  std::atomic<std::uint32_t> word_{0};
};

}  // namespace sessionbroker::detail
