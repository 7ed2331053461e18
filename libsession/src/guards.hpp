// The three segment mutexes, each locked through its RAII guard with its repair routine
// (repair.hpp): the one place that says which repair runs when a mutex's previous owner died.
//
// Lock order (never take a mutex to the left while holding one to the right):
//   registry mutex  ->  one session mutex  ->  alloc mutex
// At most one session mutex is held at a time. LAYOUT.md "Lock order" and "Repair summary".
#pragma once

#include <cstdint>

#include "fast_owner.hpp"
#include "repair.hpp"
#include "segment.hpp"
#include "sessionbroker/shm/robust_mutex.hpp"

namespace sessionbroker::detail {

// RAII for the per-session mutex with its repair routine, and the fast path's word around it
// (fast_owner.hpp): right after locking, the word is absorbed (its owner, if kGranted, goes on the
// holder list; before a repair, which then rebuilds the lists from the records, the word is only
// taken); right before unlocking, settled. So every section sees the lists as the whole truth.
class SessionGuard {
 public:
  SessionGuard(Segment& seg, std::uint32_t slot)
      : seg_(seg), slot_(slot), guard_(seg.session(slot).mutex, [&] {
          fast::absorb(seg, slot, false);
          Repair(seg).repair_session(slot);
        }) {
    if (!guard_.owner_died()) fast::absorb(seg, slot, true);
  }
  SessionGuard(const SessionGuard&) = delete;
  SessionGuard& operator=(const SessionGuard&) = delete;
  ~SessionGuard() { unlock(); }
  bool owner_died() const { return guard_.owner_died(); }
  void unlock() {
    if (!locked_) return;
    locked_ = false;
    fast::settle(seg_, slot_);
    guard_.unlock();
  }

 private:
  Segment& seg_;
  const std::uint32_t slot_;
  shm::RobustGuard guard_;
  bool locked_ = true;
};

inline shm::RobustGuard registry_guard(Segment& seg) {
  return shm::RobustGuard(seg.header().registry_mutex, [&] { Repair(seg).repair_registry(); });
}
inline shm::RobustGuard alloc_guard(Segment& seg) {
  return shm::RobustGuard(seg.header().alloc_mutex, [&] { Repair(seg).repair_alloc(); });
}

}  // namespace sessionbroker::detail
