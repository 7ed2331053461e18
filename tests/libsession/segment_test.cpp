// Attach validates everything before trusting anything: missing, foreign, corrupt, incompatible
// and forbidden segments each get their own clear error.
#include <cstring>
#include <fstream>
#include <sched.h>
#include <sstream>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

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

// Every mapping asks for 2 MiB pages. Where the tmpfs on /dev/shm allows them (huge=advise), the
// creator's pages are huge and a second mapping of the segment (an attacher's) maps them whole;
// where it does not (huge=never, /dev/shm's usual mount), 4 KiB pages and the reason. Each case
// runs in a child with a mount namespace of its own and a fresh tmpfs on /dev/shm, so the
// machine's /dev/shm is never touched.
TEST(Segment, AsksForHugePagesAndReportsWhatItGot) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root for a private mount on /dev/shm";
  std::ifstream sysfs("/sys/kernel/mm/transparent_hugepage/shmem_enabled");
  std::string kernel;
  if (!std::getline(sysfs, kernel)) GTEST_SKIP() << "this kernel has no transparent huge pages";
  if (kernel.find("[deny]") != std::string::npos || kernel.find("[force]") != std::string::npos)
    GTEST_SKIP() << "shmem_enabled overrides the mount's huge= option: " << kernel;
  for (const std::string huge : {"advise", "never"}) {
    auto child = Child::spawn([&](Channel& ch) {
      if (unshare(CLONE_NEWNS) != 0 || mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return 10;
      if (mount("tmpfs", "/dev/shm", "tmpfs", 0, ("size=64m,huge=" + huge).c_str()) != 0) return 11;
      sessionbroker::detail::CreateOptions opts;
      opts.caps = small_caps();
      opts.caps.block_count = (16u << 20) / sessionbroker::shm::kBlockBytes;  // 16 MiB: several 2 MiB pages
      auto created = Segment::create(unique_segment_name("huge"), opts);
      if (!created) return 12;
      auto attached = Segment::open((*created)->name());
      if (!attached) return 13;
      const auto* p = reinterpret_cast<const volatile char*>(&(*attached)->header());
      for (std::uint64_t at = 0; at < (*attached)->size(); at += 4096) (void)p[at];  // fault every page in
      const auto a = (*created)->pages(), b = (*attached)->pages();
      if (!a.known || !b.known) return 14;  // smaps did not show the mappings
      ch.send(fmt::format("{} {} {} {} {}", a.bytes, a.huge_bytes, b.bytes, b.huge_bytes, a.why));
      return 0;
    });
    const auto rc = child.wait();
    if (rc == 10 || rc == 11) GTEST_SKIP() << "no private tmpfs on /dev/shm here (exit " << *rc << "): a container?";
    ASSERT_EQ(rc, 0) << "huge=" << huge;
    std::istringstream got(child.channel().receive(1s).value_or(""));
    std::uint64_t bytes = 0, huge_bytes = 0, attached_bytes = 0, attached_huge = 0;
    std::string why;
    got >> bytes >> huge_bytes >> attached_bytes >> attached_huge;
    std::getline(got, why);
    ASSERT_GE(bytes, 16u << 20) << "huge=" << huge;
    if (huge == "advise") {
      EXPECT_GE(huge_bytes, bytes * 3 / 4) << "created: " << huge_bytes << " of " << bytes << " bytes in 2 MiB pages";
      EXPECT_GE(attached_huge, attached_bytes * 3 / 4) << "attached: " << attached_huge << " of " << attached_bytes;
    } else {
      EXPECT_EQ(huge_bytes, 0u);
      EXPECT_EQ(attached_huge, 0u);
      EXPECT_NE(why.find("no huge= option"), std::string::npos) << why;
    }
  }
}

}  // namespace
}  // namespace sbtest
