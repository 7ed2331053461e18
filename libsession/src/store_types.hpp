// Names the shared-memory store's roles share: a session slot with its generation, a grant as
// its lock record and token, and the retired segment's answer. The roles themselves, each a view
// over a mapped Segment: registry.hpp, lock_table.hpp, blob_store.hpp, admin.hpp, repair.hpp; their
// mutexes: guards.hpp. The protocol they implement is shm_layout/LAYOUT.md.
#pragma once

#include <cstdint>

#include "segment.hpp"
#include "sessionbroker/error.hpp"
#include "sessionbroker/shm/futex.hpp"

namespace sessionbroker::detail {

struct SessionRef {
  std::uint32_t slot = shm::kNil;
  std::uint32_t gen = 0;
};

struct RecordGrant {
  std::uint32_t record = shm::kNil;
  std::uint64_t token = 0;
};

// Whether a broker retired the segment (LAYOUT.md "Retirement"): no grant is made in it any more.
inline bool retired(const Segment& seg) { return shm::load(seg.header().retired) != 0; }

// What a client of a retired segment hears (LAYOUT.md "Retirement").
inline Status retired_status() {
  return Status(ErrorCode::kNoSegment,
                "the segment was removed (its broker stopped with --remove-on-exit): attach again to the new one");
}

}  // namespace sessionbroker::detail
