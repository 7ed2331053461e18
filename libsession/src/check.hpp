// Verifies the invariants of shm_layout/LAYOUT.md "Invariants" on a live segment, without stopping
// clients: each structure is examined under its own mutex (registry, each session in turn, then the
// allocator), so each part is a consistent snapshot of that structure. Findings name the invariant
// by its number and short name there.
//
// What it can and cannot see: it checks structure (lists, counts, modes, tokens, FIFO order, chain
// ownership, blob encoding), not history (a lost commit is the torture test's job).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sessionbroker::detail {

class Segment;

struct CheckReport {
  struct Finding {
    std::string invariant;  // e.g. "I1 one exclusive holder or shared holders, never both"
    std::string detail;
  };
  std::vector<Finding> violations;
  std::vector<std::string> notes;  // transient states that are not violations (a reclaim pending)
  std::uint32_t sessions = 0, clients = 0, holders = 0, waiters = 0;
  std::uint32_t blocks_used = 0, blocks_free = 0, blocks_pending = 0;
  bool ok() const { return violations.empty(); }
};

CheckReport check_segment(Segment& seg);

}  // namespace sessionbroker::detail
