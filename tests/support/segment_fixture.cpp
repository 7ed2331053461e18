#include "segment_fixture.hpp"

#include <atomic>
#include <unistd.h>

namespace sbtest {

std::string unique_segment_name(const std::string& tag) {
  static std::atomic<int> counter{0};
  return "sbtest-" + tag + "-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
}

sessionbroker::shm::Capacities small_caps() {
  sessionbroker::shm::Capacities c{};
  c.max_clients = 16;
  c.locks_per_client = 16;
  c.max_sessions = 64;
  c.block_count = 1024;
  c.max_value_bytes = 64 * 1024;
  return c;
}

void SegmentTest::create(const sessionbroker::shm::Capacities& caps) {
  if (!name_.empty()) TearDown();
  name_ = unique_segment_name(::testing::UnitTest::GetInstance()->current_test_info()->name());
  sessionbroker::detail::CreateOptions opts;
  opts.caps = caps;
  auto seg = sessionbroker::detail::Segment::create(name_, opts);
  ASSERT_TRUE(seg) << seg.status().to_string();
  seg_ = std::move(*seg);
  bind_roles();
}

void RolePointers::bind(sessionbroker::detail::Segment& seg) {
  namespace detail = sessionbroker::detail;
  registry = std::make_unique<detail::Registry>(seg);
  locks = std::make_unique<detail::LockTable>(seg, *registry);
  blobs = std::make_unique<detail::BlobStore>(seg);
  admin = std::make_unique<detail::Admin>(seg);
}

void RolePointers::reset() {
  admin.reset();
  blobs.reset();
  locks.reset();
  registry.reset();
}

void SegmentTest::bind_roles() { RolePointers{registry_, locks_, blobs_, admin_}.bind(*seg_); }
void SegmentTest::reset_roles() { RolePointers{registry_, locks_, blobs_, admin_}.reset(); }

void SegmentTest::TearDown() {
  reset_roles();
  seg_.reset();
  sessionbroker::detail::Segment::remove(name_);
}

}  // namespace sbtest
