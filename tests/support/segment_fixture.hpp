// A fresh segment per test, under a unique name, removed afterwards (so tests may run in parallel
// and leave /dev/shm clean). Clients work without a broker, so most tests need none.
#pragma once

#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "segment.hpp"
#include "store.hpp"

namespace sbtest {

std::string unique_segment_name(const std::string& tag);

// Small capacities so that "full" is easy to reach.
sessionbroker::shm::Capacities small_caps();

class SegmentTest : public ::testing::Test {
 protected:
  void SetUp() override { create(small_caps()); }
  void TearDown() override;
  void create(const sessionbroker::shm::Capacities& caps);

  std::string name_;
  std::unique_ptr<sessionbroker::detail::Segment> seg_;
  std::unique_ptr<sessionbroker::detail::Store> store_;
};

}  // namespace sbtest
