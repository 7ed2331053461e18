// Repair: the one place that repairs (LAYOUT.md "Repair summary"). Each routine runs with its
// mutex held after the previous owner died (EOWNERDEAD), called by that mutex's guard
// (guards.hpp), and restores every invariant of the structure the mutex guards, whatever step the
// dead owner was at: registry I11 and I12, session I1, I4, I8 and I9, allocator I10.
//
// Owns no data of its own: it rebuilds what the registry (index, session free list, kDead
// clients) and the lock table (a session's lists) derive from the segment, through their locked
// steps (registry.hpp, lock_table.hpp); the allocator's free list it rebuilds itself.
// Lock order: each routine runs under the mutex it repairs and takes only what that mutex's
// holder may take next (the registry repair's client reclaims take session and alloc mutexes).
#pragma once

#include <cstdint>

#include "segment.hpp"

namespace sessionbroker::detail {

class Repair {
 public:
  explicit Repair(Segment& seg) : seg_(seg) {}

  void repair_registry();                    // REQUIRES: registry mutex, owner died
  void repair_session(std::uint32_t slot);   // REQUIRES: session mutex of `slot`, owner died
  void repair_alloc();                       // REQUIRES: alloc mutex, owner died

 private:
  Segment& seg_;
};

}  // namespace sessionbroker::detail
