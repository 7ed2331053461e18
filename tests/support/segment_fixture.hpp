// A fresh segment per test, under a unique name, removed afterwards (so tests may run in parallel
// and leave /dev/shm clean). Clients work without a broker, so most tests need none.
#pragma once

#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "segment.hpp"
#include "admin.hpp"
#include "blob_store.hpp"
#include "lock_table.hpp"
#include "registry.hpp"

namespace sbtest {

std::string unique_segment_name(const std::string& tag);

// The store's roles over `seg`, as the fixtures hold them: bind after mapping the segment, reset
// (in the reverse order: the lock table refers to the registry) before unmapping it.
struct RolePointers {
  std::unique_ptr<sessionbroker::detail::Registry>& registry;
  std::unique_ptr<sessionbroker::detail::LockTable>& locks;
  std::unique_ptr<sessionbroker::detail::BlobStore>& blobs;
  std::unique_ptr<sessionbroker::detail::Admin>& admin;
  void bind(sessionbroker::detail::Segment& seg);
  void reset();
};

// Small capacities so that "full" is easy to reach.
sessionbroker::shm::Capacities small_caps();

class SegmentTest : public ::testing::Test {
 protected:
  void SetUp() override { create(small_caps()); }
  void TearDown() override;
  void create(const sessionbroker::shm::Capacities& caps);
  // The store's roles over seg_ (bind after mapping it, reset before unmapping it).
  void bind_roles();
  void reset_roles();

  std::string name_;
  std::unique_ptr<sessionbroker::detail::Segment> seg_;
  std::unique_ptr<sessionbroker::detail::Registry> registry_;
  std::unique_ptr<sessionbroker::detail::LockTable> locks_;
  std::unique_ptr<sessionbroker::detail::BlobStore> blobs_;
  std::unique_ptr<sessionbroker::detail::Admin> admin_;
};

}  // namespace sbtest
