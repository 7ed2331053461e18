// The three segment mutexes, each locked through its RAII guard with its repair routine
// (repair.hpp): the one place that says which repair runs when a mutex's previous owner died.
//
// Lock order (never take a mutex to the left while holding one to the right):
//   registry mutex  ->  one session mutex  ->  alloc mutex
// At most one session mutex is held at a time. LAYOUT.md "Lock order" and "Repair summary".
#pragma once

#include <cstdint>

#include "repair.hpp"
#include "segment.hpp"
#include "sessionbroker/shm/robust_mutex.hpp"

namespace sessionbroker::detail {

// RAII for the per-session mutex with its repair routine.
class SessionGuard {
 public:
  SessionGuard(Segment& seg, std::uint32_t slot)
      : guard_(seg.session(slot).mutex, [&] { Repair(seg).repair_session(slot); }) {}
  bool owner_died() const { return guard_.owner_died(); }
  void unlock() { guard_.unlock(); }

 private:
  shm::RobustGuard guard_;
};

inline shm::RobustGuard registry_guard(Segment& seg) {
  return shm::RobustGuard(seg.header().registry_mutex, [&] { Repair(seg).repair_registry(); });
}
inline shm::RobustGuard alloc_guard(Segment& seg) {
  return shm::RobustGuard(seg.header().alloc_mutex, [&] { Repair(seg).repair_alloc(); });
}

}  // namespace sessionbroker::detail
