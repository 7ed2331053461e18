// One screen of `sessionctl watch`, as text: a pure function of two collect_stats() snapshots, so
// the live view, `watch --once` and the tests all see the same frame.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "stats.hpp"
#include "terminal.hpp"

namespace sessionctl {

struct FrameHeader {
  std::string segment;
  std::string broker;  // "broker 812 up 3h12m", "no broker", ...
  std::chrono::milliseconds interval;
};

// `before`: the previous snapshot, or nullptr for the first frame (rates are shown as "-").
// Returns at most size.rows lines of at most size.cols bytes each, all printable ASCII.
std::vector<std::string> watch_frame(const FrameHeader& header, const sessionbroker::detail::SegmentStats& now,
                                     const sessionbroker::detail::SegmentStats* before, ScreenSize size);

}  // namespace sessionctl
