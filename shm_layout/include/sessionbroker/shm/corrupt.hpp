// The one exception of the segment layer: the segment cannot be trusted for this call (an index or
// length read from it is out of range, or one of its mutexes cannot be locked). Thrown only where
// going on would mean a wild access or an unlocked critical section; the library's boundary
// (ShmBackend, the broker's loop, the tools) turns it into ErrorCode::kCorrupt.
#pragma once

#include <stdexcept>
#include <string>

namespace sessionbroker::shm {

class SegmentCorrupt : public std::runtime_error {
 public:
  explicit SegmentCorrupt(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace sessionbroker::shm
