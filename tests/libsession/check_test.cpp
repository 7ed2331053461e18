// The invariant checker finds nothing on a healthy segment under load, and names the invariant
// (its number in shm_layout/LAYOUT.md "Invariants") when one is broken on purpose. Each damage below is one a protocol bug could cause.
#include <unistd.h>

#include "check.hpp"
#include "fast_owner.hpp"
#include "claims/claim_fixture.hpp"

namespace sbtest {
namespace {

using sessionbroker::detail::check_segment;
namespace shm = sessionbroker::shm;

class CheckTest : public ShmClaimTest {
 protected:
  // A segment with committed state, a holder and a queue of two waiters (in child processes).
  void populate() {
    c_ = attach();
    s_ = std::make_unique<sessionbroker::Session>(*c_->create("busy"));
    {
      auto l = s_->lock({"a", "b"}, Mode::kExclusive, in(5s));
      ASSERT_TRUE(l->put("a", std::string(600, 'a')));
      ASSERT_TRUE(l->put("b", "b"));
    }
    held_ = std::make_unique<sessionbroker::SessionLock>(s_->lock({"a"}, Mode::kExclusive, in(5s)).value());
    for (int i = 0; i < 2; ++i) {
      waiters_.push_back(Child::spawn([&](Channel&) {
        auto cc = Client::attach(name_);
        return (*cc)->open("busy")->lock({"a"}, Mode::kShared, in(30s)) ? 0 : 1;
      }));
      const std::size_t n = waiters_.size();
      ASSERT_TRUE(eventually([&] { return queue_len("busy") == n; }));
    }
  }
  std::string violations() {
    std::string out;
    for (auto& v : check_segment(*seg_).violations) out += v.invariant + ": " + v.detail + "\n";
    return out;
  }
  shm::SessionSlot& busy() { return seg_->session(registry_->open_session("busy")->slot); }

  std::unique_ptr<Client> c_;
  std::unique_ptr<sessionbroker::Session> s_;
  std::unique_ptr<sessionbroker::SessionLock> held_;
  std::vector<Child> waiters_;
};

TEST_F(CheckTest, HealthySegmentUnderLoadPasses) {
  populate();
  auto report = check_segment(*seg_);
  EXPECT_TRUE(report.ok()) << violations();
  EXPECT_EQ(report.holders, 1u);
  EXPECT_EQ(report.waiters, 2u);
  EXPECT_EQ(report.blocks_used + report.blocks_free, seg_->caps().block_count);
  ASSERT_TRUE(held_->unlock());
  for (auto& w : waiters_) EXPECT_EQ(w.wait(), 0);
  EXPECT_EQ(violations(), "");
}

TEST_F(CheckTest, WrongHolderCountIsNamed) {
  populate();
  busy().holder_count = 2;
  EXPECT_NE(violations().find("I1"), std::string::npos) << violations();
  busy().holder_count = 1;
}

TEST_F(CheckTest, GrantableWaiterIsALostWakeUp) {
  populate();
  const std::uint32_t holder = busy().holders_head;
  busy().holders_head = shm::kNil;  // the holder vanishes from the list without a grant pass
  busy().holder_count = 0;
  busy().lock_mode = 0;
  const std::string v = violations();
  EXPECT_NE(v.find("lost wake-up"), std::string::npos) << v;
  EXPECT_NE(v.find("ghost"), std::string::npos) << v;
  busy().holders_head = holder;
  busy().holder_count = 1;
  shm::set_lock_mode(busy(), shm::LockMode::kExclusive);
}

TEST_F(CheckTest, QueueOutOfTicketOrderIsNamed) {
  populate();
  auto& first = seg_->record(busy().queue_head);
  std::swap(first.ticket, seg_->record(first.next).ticket);
  EXPECT_NE(violations().find("I4"), std::string::npos) << violations();
  std::swap(first.ticket, seg_->record(first.next).ticket);
}

TEST_F(CheckTest, LeakedBlockIsNamed) {
  populate();
  auto& h = seg_->header();
  const std::uint32_t leaked = h.free_head;
  h.free_head = seg_->block(leaked).next;
  --h.free_count;
  EXPECT_NE(violations().find("leaked"), std::string::npos) << violations();
  seg_->block(leaked).next = h.free_head;
  h.free_head = leaked;
  ++h.free_count;
}

TEST_F(CheckTest, DuplicateTokenIsNamed) {
  populate();
  ASSERT_TRUE(c_->create("other"));
  auto other = c_->open("other")->lock_all(Mode::kExclusive, in(5s));
  ASSERT_TRUE(other);
  // A sole exclusive holder is on no list: the session's fast word names it (fast_owner.hpp).
  const auto owner = sessionbroker::detail::fast::owner_of(seg_->session(registry_->open_session("other")->slot).fast);
  ASSERT_TRUE(owner);
  auto& rec = seg_->record(*owner);
  const auto saved = rec.token;
  rec.token = seg_->record(busy().holders_head).token;
  EXPECT_NE(violations().find("held twice"), std::string::npos) << violations();
  rec.token = saved;
}

}  // namespace
}  // namespace sbtest
