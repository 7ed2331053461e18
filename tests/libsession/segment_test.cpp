// Attach validates everything before trusting anything: missing, foreign, corrupt, incompatible
// and forbidden segments each get their own clear error.
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "claims/claim_fixture.hpp"

namespace sbtest {
namespace {

using sessionbroker::detail::Segment;

TEST(Segment, MissingSegmentIsNoSegment) {
  auto r = Segment::open(unique_segment_name("missing"));
  EXPECT_EQ(r.code(), ErrorCode::kNoSegment);
  EXPECT_NE(r.status().message().find("does not exist"), std::string::npos);
}

TEST(Segment, BadNamesAreRefused) {
  EXPECT_EQ(Segment::open("").code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(Segment::open("a/b").code(), ErrorCode::kInvalidArgument);
}

TEST_F(ShmClaimTest, CreatingAnExistingSegmentFails) {
  sessionbroker::detail::CreateOptions opts;
  opts.caps = small_caps();
  EXPECT_EQ(Segment::create(name_, opts).code(), ErrorCode::kAlreadyExists);
}

TEST_F(ShmClaimTest, SegmentIsCreatedWithMode0600) {
  struct stat st {};
  ASSERT_EQ(stat(("/dev/shm/" + name_).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_uid, geteuid());
}

TEST_F(ShmClaimTest, CorruptMagicIsRefused) {
  seg_->header().magic = 0x1234;
  EXPECT_EQ(Segment::open(name_).code(), ErrorCode::kCorrupt);
  EXPECT_EQ(Client::attach(name_).code(), ErrorCode::kCorrupt);
}

TEST_F(ShmClaimTest, OtherLayoutVersionIsIncompatible) {
  seg_->header().layout_version = 99;
  auto r = Segment::open(name_);
  EXPECT_EQ(r.code(), ErrorCode::kIncompatible);
  EXPECT_NE(r.status().message().find("layout version 99"), std::string::npos);
}

TEST_F(ShmClaimTest, OtherFingerprintIsIncompatible) {
  seg_->header().fingerprint ^= 1;
  EXPECT_EQ(Segment::open(name_).code(), ErrorCode::kIncompatible);
}

TEST_F(ShmClaimTest, TamperedRegionMapOrCapacitiesAreCorrupt) {
  seg_->header().regions.blocks += 64;
  EXPECT_EQ(Segment::open(name_).code(), ErrorCode::kCorrupt);
  seg_->header().regions.blocks -= 64;
  seg_->header().caps.max_sessions = 0;
  EXPECT_EQ(Segment::open(name_).code(), ErrorCode::kCorrupt);
}

TEST_F(ShmClaimTest, TruncatedSegmentIsCorrupt) {
  const int fd = shm_open(name_.c_str(), O_RDWR, 0);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, static_cast<off_t>(seg_->size() - 4096)), 0);
  close(fd);
  EXPECT_EQ(Segment::open(name_).code(), ErrorCode::kCorrupt);
}

// Root ignores file modes, so the check runs in a child that drops to an unprivileged user.
TEST_F(ShmClaimTest, OtherUserGetsPermissionDenied) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to switch to another user";
  auto other = Child::spawn([&](Channel& ch) {
    if (setgid(65534) != 0 || setuid(65534) != 0) return 10;
    auto r = Client::attach(name_);
    ch.send(r.status().to_string());
    return r.code() == ErrorCode::kPermissionDenied ? 0 : 1;
  });
  EXPECT_EQ(other.wait(), 0) << other.channel().receive(1s).value_or("");
}

}  // namespace
}  // namespace sbtest
