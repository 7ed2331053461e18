#include <gtest/gtest.h>

#include "sessionbroker/shm/layout.hpp"

namespace {

using namespace sessionbroker::shm;

Capacities caps() { return {16, 16, 64, 1024, 65536, 0, 0, 0}; }

TEST(Layout, RegionsAreOrderedAlignedAndFitTheSize) {
  auto r = compute_regions(caps());
  ASSERT_TRUE(r);
  EXPECT_LT(r->clients, r->records);
  EXPECT_LT(r->records, r->sessions);
  EXPECT_LT(r->sessions, r->index);
  EXPECT_LT(r->index, r->blocks);
  EXPECT_LE(r->blocks + 1024ull * sizeof(Block), r->end);
  for (auto off : {r->clients, r->records, r->sessions, r->index, r->blocks}) EXPECT_EQ(off % 64, 0u);
  EXPECT_EQ(r->end % 4096, 0u);
  EXPECT_GE(r->index_size, 128u);
  EXPECT_EQ(r->index_size & (r->index_size - 1), 0u) << "index size is a power of two";
}

TEST(Layout, OutOfRangeCapacitiesAreRejected) {
  for (auto mutate : std::initializer_list<void (*)(Capacities&)>{
           [](Capacities& c) { c.max_clients = 0; }, [](Capacities& c) { c.max_clients = kMaxClients + 1; },
           [](Capacities& c) { c.max_sessions = 0; }, [](Capacities& c) { c.block_count = kMaxBlocks + 1; },
           [](Capacities& c) { c.locks_per_client = 0; }, [](Capacities& c) { c.max_value_bytes = 0; },
           [](Capacities& c) { c.max_value_bytes = c.block_count * kBlockPayload + 1; }}) {
    Capacities c = caps();
    mutate(c);
    EXPECT_FALSE(compute_regions(c));
  }
}

TEST(Layout, FingerprintIsStable) { EXPECT_EQ(layout_fingerprint(), layout_fingerprint()); }

}  // namespace
