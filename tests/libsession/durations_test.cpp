// Durations saturate instead of wrapping: a TTL, a revoke deadline or a lock deadline too long to
// count in nanoseconds means "never", not "at once". Before, milliseconds::max() turned into about
// -1 ms on the way (ttl * 1'000'000 in 64 bits, Clock::now() + d), so the longest durations acted
// like the shortest; and the duration parser let "n * 3'600'000" wrap into a small value.
#include <atomic>
#include <future>
#include <limits>

#include <unistd.h>

#include "broker_child.hpp"
#include "claims/claim_fixture.hpp"
#include "clock.hpp"
#include "units.hpp"

namespace sbtest {
namespace {

using namespace std::chrono;
using sessionbroker::Clock;
using sessionbroker::Deadline;
using sessionbroker::RevokeEvent;
using sessionbroker::detail::parse_duration;

constexpr std::uint64_t kNsPerYear = 365ull * 24 * 3600 * 1'000'000'000ull;

class DurationsTest : public ShmClaimTest {};

// A session created with the longest TTL there is stays put however long it idles; the control
// session with a 1 ms TTL shows that the same call does expire what is due.
TEST_F(DurationsTest, LongestTtlNeverExpires) {
  auto c = attach();
  ASSERT_TRUE(c->create("forever", milliseconds::max()));
  ASSERT_TRUE(c->create("brief", 1ms));
  const auto forever = registry_->open_session("forever")->slot, brief = registry_->open_session("brief")->slot;
  const std::uint64_t later = sessionbroker::detail::mono_ns() + 200 * kNsPerYear;
  EXPECT_EQ(registry_->expire_if_idle(forever, later), std::nullopt);
  EXPECT_EQ(registry_->expire_if_idle(forever, std::numeric_limits<std::uint64_t>::max()), std::nullopt);
  EXPECT_EQ(registry_->expire_if_idle(brief, later), "brief");
  EXPECT_TRUE(c->open("forever"));
}

// The parser accepts what fits in nanoseconds (about 292 years) and rejects anything longer,
// where it used to wrap: 5124095576030432h is 2^64 ms and a few, and came back as a few ms.
TEST(Durations, ParserRejectsDurationsTooLongToCountInsteadOfWrapping) {
  EXPECT_EQ(parse_duration("1500us"), 1ms);
  EXPECT_EQ(parse_duration("5"), 5s);
  EXPECT_EQ(parse_duration("2m"), 2min);
  EXPECT_EQ(parse_duration("1h"), 1h);
  EXPECT_EQ(parse_duration("9223372036s"), 9223372036s);  // the longest whole number of seconds that fits
  EXPECT_EQ(parse_duration("9223372037s"), std::nullopt);
  EXPECT_EQ(parse_duration("2562047h"), 2562047h);
  EXPECT_EQ(parse_duration("2562048h"), std::nullopt);
  EXPECT_EQ(parse_duration("5124095576030432h"), std::nullopt);
  EXPECT_EQ(parse_duration("307445734561825861min"), std::nullopt);
  EXPECT_EQ(parse_duration("18446744073709552s"), std::nullopt);
  EXPECT_EQ(parse_duration("9223372036854775808ms"), std::nullopt);
  EXPECT_EQ(parse_duration("18446744073709551615us"), std::nullopt);
  EXPECT_EQ(parse_duration("99999999999999999999999s"), std::nullopt);
}

// in(d) saturates at Deadline::max() for any d too long to add to now, whatever its unit (before,
// hours::max() and milliseconds::max() converted to a negative number of nanoseconds).
TEST(Durations, InSaturatesAtTheLatestDeadline) {
  // Nanoseconds since the clock's epoch, so that a failure prints numbers.
  auto ns = [](Deadline d) { return d.time_since_epoch().count(); };
  const auto now = ns(Clock::now());
  const auto latest = ns(Deadline::max());
  EXPECT_GE(ns(in(milliseconds::max())), now);
  EXPECT_EQ(ns(in(milliseconds::max())), latest);
  EXPECT_EQ(ns(in(hours::max())), latest);
  EXPECT_EQ(ns(in(nanoseconds::max())), latest);
  EXPECT_GE(ns(in(1h)), now + nanoseconds(1h).count());
  const auto past_hour = ns(in(hours::min())), past_second = ns(in(-1s));
  EXPECT_LE(past_hour, ns(Clock::now()));
  EXPECT_LE(past_second, ns(Clock::now()));
}

// A lock wait whose deadline is in(hours::max()) waits (the futex timeout of Deadline::max() is
// "very long", not "already passed") and is granted when the holder lets go. The holder lets go
// only after its revoke request, that is once the waiter has queued.
TEST_F(DurationsTest, LockWaitWithTheLatestDeadlineBlocksUntilGranted) {
  auto c = attach();
  auto s = c->create("s");
  ASSERT_TRUE(s);
  auto holder = Child::spawn([&](Channel& ch) {
    auto cc = Client::attach(name_);
    std::promise<void> requested;
    std::atomic<bool> once{false};
    (*cc)->on_revoke([&](const RevokeEvent& e) {
      if (e.kind == RevokeEvent::Kind::kRequested && !once.exchange(true)) requested.set_value();
    });
    auto l = (*cc)->open("s")->lock_all(Mode::kExclusive, in(5s));
    ch.send(l ? "locked" : "failed " + l.status().to_string());
    if (requested.get_future().wait_for(10s) != std::future_status::ready) return 1;
    ch.send("asked");
    return l->unlock() ? 0 : 2;
  });
  ASSERT_EQ(holder.channel().receive(), "locked");
  auto l = s->lock_all(Mode::kExclusive, in(hours::max()));
  ASSERT_TRUE(l) << l.status().to_string();
  EXPECT_EQ(holder.channel().receive(), "asked") << "granted without queueing behind the holder";
  EXPECT_EQ(holder.wait(), 0);
}

// A segment whose revoke deadline is too long to count in nanoseconds: the broker must never
// break a lock for it (before, revoke_deadline_ms * 1'000'000 wrapped to about -1 ms and the
// first housekeeping pass broke the holder's lock). The waiter's own deadline ends the test.
TEST_F(DurationsTest, LongestRevokeDeadlineNeverBreaksALock) {
  auto caps = small_caps();
  caps.revoke_deadline_ms = std::numeric_limits<std::uint64_t>::max();
  create(caps);
  sessionbroker::broker::BrokerChild broker(SESSION_BROKER_BIN, name_);
  ASSERT_TRUE(broker.start());
  auto c = attach();
  auto s = c->create("s");
  auto stubborn = s->lock_all(Mode::kExclusive, in(5s));  // never unlocked while the waiter waits
  ASSERT_TRUE(stubborn);
  auto waiter = Child::spawn([&](Channel& ch) {
    auto cc = Client::attach(name_);
    auto l = (*cc)->open("s")->lock_all(Mode::kExclusive, in(600ms));  // several housekeeping passes
    ch.send(l ? "granted" : std::string(sessionbroker::to_string(l.code())));
    return 0;
  });
  EXPECT_EQ(waiter.channel().receive(), std::string(sessionbroker::to_string(ErrorCode::kTimeout)));
  EXPECT_EQ(waiter.wait(), 0);
  EXPECT_TRUE(stubborn->put("a", "still mine"));
  EXPECT_TRUE(stubborn->commit());
  EXPECT_EQ(broker.terminate(), 0);
}

}  // namespace
}  // namespace sbtest
