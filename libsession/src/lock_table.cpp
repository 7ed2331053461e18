// The lock protocol: grant, queue, revoke request, release. LAYOUT.md section "Lock protocol".
//
// Every state change of a record happens under its session's mutex and ends with one release
// store of LockRecord::state; the waiting owner reads that word without the mutex. Grants bump the
// record's `wake` word after the state store and futex-wake it unless its owner is marked awake
// (lock_record.hpp, `wake`), so a waiter cannot miss a grant. A grant that had to wake its owner
// also marks and wakes the new queue head, which then watches for its own grant (§4 step 4).
#include <algorithm>
#include <cstddef>
#include <thread>

#include <fmt/format.h>

#include "clock.hpp"
#include "fast_owner.hpp"
#include "liveness.hpp"
#include "stats.hpp"
#include "guards.hpp"
#include "lock_table.hpp"
#include "test_point.hpp"

namespace sessionbroker::detail {
namespace {

using shm::LockMode;
using shm::RecordState;

// Waiters check their session's holders' liveness after this long without a grant, then after
// twice as long, up to kLivenessSliceMax: a dead holder is found within milliseconds even while no
// broker runs, and a waiter behind a live, busy holder reads /proc only a few times a second.
constexpr auto kLivenessSliceMin = std::chrono::milliseconds(5);
constexpr auto kLivenessSliceMax = std::chrono::milliseconds(200);

// How long the queue's head watches its record before it sleeps (see spin_for_grant).
constexpr auto kSpinBudget = std::chrono::microseconds(20);
// How long the head spins before it wakes the holders' revoke threads (LockTable::acquire): about
// what a holder at work takes to reach its unlock in a tight request loop (1-2 us here).
constexpr auto kHandBackSpin = std::chrono::microseconds(5);
// How long the request next in line watches its record after a wake that brought no grant: the
// request behind it woke it as it went to sleep (LockTable::wait_for_grant), so that it is on a core
// when the holder lets go.
constexpr auto kNextInLineSpin = std::chrono::microseconds(5);

// Adaptive spinning. A holder that answers a revoke request at once hands the lock over within
// microseconds; a waiter watching its record then runs a cache-line transfer after the grant,
// where a sleeping one runs a futex wake later (about 3 us on an idle VM, far more under load).
// Only the queue's head spins, and only where a second core exists: waiters behind it could only
// take the cores the holder and the head need. Past its budget it sleeps, so a long hold costs
// kHandBackSpin + kSpinBudget + kHandBackSpin (30 us) of CPU per request, and the head, woken once
// by the request behind it (kNextInLineSpin), 5 us more.
bool multicore() {
  static const bool more_than_one = std::thread::hardware_concurrency() > 1;
  return more_than_one;
}

// True once the record left kWaiting (granted, or broken); false when it did not spin or the
// budget ran out first.
bool spin_for_grant(const shm::LockRecord& r, Clock::time_point deadline, Clock::duration budget = kSpinBudget) {
  if (!multicore()) return false;
  const auto until = std::min(deadline, Clock::now() + budget);
  for (unsigned i = 1;; ++i) {
    if (shm::state(r) != RecordState::kWaiting) return true;
    shm::cpu_relax();
    if (i % 64 == 0 && Clock::now() >= until) return false;  // the clock costs more than a pause
  }
}

}  // namespace

void DeferredWakes::bump(std::uint32_t& word) {
  shm::fetch_add<std::uint32_t>(word, 1u, std::memory_order_acq_rel);
  wake(word);
}

void DeferredWakes::wake(std::uint32_t& word) {
  if (count_ < kMax) words_[count_++] = &word;
  else shm::futex_wake(word);
}

void DeferredWakes::flush() {
  if (count_ == 0) return;
  test_point(TestPoint::kWakesDeferred);
  for (unsigned i = 0; i < count_; ++i) shm::futex_wake(*words_[i]);
  count_ = 0;
}

void bump_and_wake(std::uint32_t& word, DeferredWakes* defer) {
  if (defer) defer->bump(word);
  else shm::bump_and_wake(word);
}

namespace {
// A futex wake: at once without `defer`, after the session mutex with it.
void futex_wake(std::uint32_t& word, DeferredWakes* defer) {
  if (defer) defer->wake(word);
  else shm::futex_wake(word);
}

// §4 step 3 (docs/protocol.md): a granted record's bump, and its futex wake unless its owner is
// marked awake (shm::kWakeAwake, lock_record.hpp): then it is watching its `state`, or will read
// it before it sleeps, and the system call (0.6 us on the AMD VM) would wake nobody. True when
// it made (or deferred) the wake: the owner was not marked, so it may have been asleep.
bool wake_grantee(shm::LockRecord& r, DeferredWakes* defer) {
  if (shm::fetch_add(r.wake, shm::kWakeBump) & shm::kWakeAwake) return false;
  futex_wake(r.wake, defer);
  return true;
}

// Bumps a waiting record's `wake` by kWakeBump and sets its awake mark in one compare-and-swap, so
// that the word never goes back (lock_record.hpp, `wake`). False, and nothing written, when the
// mark was set already (its owner is awake); true when the caller must futex-wake it.
bool mark_awake(shm::LockRecord& r) {
  std::uint32_t w = shm::load(r.wake);
  while (!(w & shm::kWakeAwake) && !shm::compare_exchange(r.wake, w, (w + shm::kWakeBump) | shm::kWakeAwake)) {
  }
  return !(w & shm::kWakeAwake);
}
}  // namespace

bool LockTable::compatible(const shm::SessionSlot& s, LockMode mode) const {
  return s.holder_count == 0 || (mode == LockMode::kShared && shm::lock_mode(s) == LockMode::kShared);
}

void LockTable::grant(shm::SessionSlot& s, std::uint32_t rec, std::uint64_t now_ns) {
  auto& r = seg_.record(rec);
  r.token = shm::fetch_add<std::uint64_t>(seg_.header().next_token, 1);
  r.since_ns = now_ns;
  r.revoke = 0;
  r.revoke_at_ns = 0;
  r.next = s.holders_head;
  s.holders_head = rec;
  ++s.holder_count;
  shm::set_lock_mode(s, shm::mode(r));
  shm::fetch_add<std::uint64_t>(s.grants, 1, std::memory_order_relaxed);  // the fast path counts without the mutex
  if (now_ns != 0) shm::store(s.last_used_ns, now_ns, std::memory_order_relaxed);
  // seq_cst: pairs with evict_client (admin.cpp), see there.
  shm::set_state(r, RecordState::kGranted, std::memory_order_seq_cst);
}

void LockTable::enqueue(shm::SessionSlot& s, std::uint32_t rec) {
  auto& r = seg_.record(rec);
  r.next = shm::kNil;
  r.ticket = s.next_ticket++;
  r.since_ns = mono_ns();
  if (s.queue_tail == shm::kNil) s.queue_head = rec;
  else seg_.record(s.queue_tail).next = rec;
  s.queue_tail = rec;
  ++s.queue_len;
  ++s.waits;
  shm::set_state(r, RecordState::kWaiting, std::memory_order_seq_cst);
}

// Grants the head of the queue while it is compatible: one exclusive waiter, or every consecutive
// shared waiter (I4). Then asks the holders to release if anyone is still queued.
// Flags first, wakes second: a woken grantee reads its revoke flag before it uses the grant
// (LocalSession::acquire_process_lock), so its owner's revoke thread is not woken for it; with 3 or
// more processes in turn that wake was a second futex wake inside every handoff, and a thread
// competing with the grantee for a core.
void LockTable::grant_waiters(shm::SessionSlot& s, DeferredWakes* defer, std::uint64_t last_granted_ns) {
  std::uint64_t now_ns = 0;  // read once, and only when someone waits: it times the handoff
  std::uint32_t granted = 0;  // the first `granted` records of the holder list
  while (s.queue_head != shm::kNil) {
    const std::uint32_t rec = s.queue_head;
    auto& r = seg_.record(rec);
    const auto mode = shm::mode(r);
    if (!compatible(s, mode)) break;
    s.queue_head = r.next;
    if (s.queue_head == shm::kNil) s.queue_tail = shm::kNil;
    --s.queue_len;
    if (now_ns == 0) now_ns = mono_ns();
    grant(s, rec, now_ns);
    ++granted;
    if (mode == LockMode::kExclusive) break;
  }
  if (s.queue_head != shm::kNil) request_revoke(s, granted, defer);
  std::uint32_t h = s.holders_head;
  bool woke_sleeper = false;
  for (std::uint32_t i = 0; i < granted; ++i, h = seg_.record(h).next) woke_sleeper |= wake_grantee(seg_.record(h), defer);
  // §4 step 4: a grant that had to wake its grantee found nobody awake in line, and the next
  // handoff would wait for a wake-up too. The new head is woken now, to be on a core by then,
  // when the hold that just ended was short (kShortHoldNs): after a long one the head would
  // watch in vain. Not after a grant to an owner marked awake either: the head, woken a whole
  // handoff early, would watch in vain and sleep again (bench/results/hot-notes.md, "A grant to
  // a sleeper wakes the next in line too").
  if (woke_sleeper && s.queue_head != shm::kNil && last_granted_ns != 0 && now_ns - last_granted_ns < kShortHoldNs &&
      multicore()) {
    auto& n = seg_.record(s.queue_head);
    if (mark_awake(n)) futex_wake(n.wake, defer);
  }
}

void LockTable::request_revoke(shm::SessionSlot& s, std::uint32_t just_granted, DeferredWakes* defer) {
  std::uint32_t i = 0;
  for (std::uint32_t h = s.holders_head; h != shm::kNil; h = seg_.record(h).next, ++i) {
    auto& r = seg_.record(h);
    if (shm::load(r.revoke) != 0) continue;
    r.revoke_at_ns = mono_ns();
    shm::store(r.revoke, 1u);
    auto& owner = seg_.client(seg_.client_of_record(h));
    shm::fetch_add<std::uint32_t>(owner.revoke_pending, 1u);
    if (i >= just_granted) bump_and_wake(owner.notify, defer);
  }
}

void LockTable::clear_revoke_flags(shm::SessionSlot& s) {
  for (std::uint32_t h = s.holders_head; h != shm::kNil; h = seg_.record(h).next) shm::store(seg_.record(h).revoke, 0u);
}

// Unlinks `rec` from the holder list or the queue of `s`. Returns false if it was in neither.
bool LockTable::unlink(shm::SessionSlot& s, std::uint32_t rec) {
  auto& r = seg_.record(rec);
  const RecordState st = shm::state(r);
  if (st == RecordState::kGranted || st == RecordState::kReleasing) {  // kReleasing: release_fast, absorbed
    for (std::uint32_t* link = &s.holders_head; *link != shm::kNil; link = &seg_.record(*link).next) {
      if (*link != rec) continue;
      *link = r.next;
      if (--s.holder_count == 0) shm::set_lock_mode(s, LockMode::kNone);
      return true;
    }
  } else if (st == RecordState::kWaiting) {
    std::uint32_t prev = shm::kNil;
    for (std::uint32_t* link = &s.queue_head; *link != shm::kNil; prev = *link, link = &seg_.record(*link).next) {
      if (*link != rec) continue;
      *link = r.next;
      if (s.queue_tail == rec) s.queue_tail = prev;
      --s.queue_len;
      return true;
    }
  }
  return false;
}

// Takes `rec` out of the session, grants whoever that unblocks, and leaves the record in
// `final_state` (kFree when its owner gives it back, kBroken when taken by force).
void LockTable::remove_record(shm::SessionSlot& s, std::uint32_t rec, RecordState final_state, DeferredWakes* defer,
                              std::uint64_t granted_ns) {
  auto& r = seg_.record(rec);
  unlink(s, rec);
  r.next = shm::kNil;
  shm::set_state(r, final_state);
  shm::mark_used(s);
  grant_waiters(s, defer, granted_ns);
  if (s.queue_head == shm::kNil) clear_revoke_flags(s);
}

int LockTable::break_all_locked(shm::SessionSlot& s, const RecordGrant* own) {
  int broken = 0;
  for (std::uint32_t* head : {&s.holders_head, &s.queue_head}) {
    while (*head != shm::kNil) {
      const std::uint32_t rec = *head;
      auto& r = seg_.record(rec);
      *head = r.next;
      r.next = shm::kNil;
      const bool mine = own && own->record == rec;
      shm::set_state(r, mine ? RecordState::kFree : RecordState::kBroken);
      shm::bump_and_wake(r.wake);
      if (mine) continue;
      shm::bump_and_wake(seg_.client(seg_.client_of_record(rec)).notify);
      ++broken;
    }
  }
  s.queue_tail = shm::kNil;
  s.holder_count = s.queue_len = 0;
  shm::set_lock_mode(s, LockMode::kNone);
  return broken;
}

bool LockTable::holds(const Segment& seg, const shm::SessionSlot& s, SessionRef ref, const RecordGrant& g) {
  if (g.record >= seg.record_count()) return false;
  const auto& r = seg.record(g.record);
  return shm::state(s, std::memory_order_relaxed) == shm::SessionState::kLive && s.generation == ref.gen &&
         shm::state(r) == RecordState::kGranted && r.token == g.token && r.session == ref.slot;
}

// A record leaves kGranted only through kBroken or kFree, and is granted again only with a new
// token (written before its state): so kGranted, then g's token, means g's own grant was current at
// the state load. The owner's thread lock keeps the record from being released and reused under it.
bool LockTable::holds_unlocked(const Segment& seg, SessionRef ref, const RecordGrant& g) {
  if (g.record >= seg.record_count()) return false;
  const auto& r = seg.record(g.record);
  return shm::state(r) == RecordState::kGranted && shm::load(r.token, std::memory_order_relaxed) == g.token &&
         shm::load(r.session, std::memory_order_relaxed) == ref.slot &&
         shm::load(r.session_gen, std::memory_order_relaxed) == ref.gen;
}

Result<RecordGrant> LockTable::acquire(std::uint32_t client, std::uint32_t rec, SessionRef ref, LockMode mode,
                             Clock::time_point deadline, const Caller* caller) {
  FastTry fast = acquire_fast(client, rec, ref, mode, caller);
  if (fast.claim == FastClaim::kGranted) return RecordGrant{rec, fast.token};
  if (fast.claim == FastClaim::kGone) return std::move(fast.why);
  auto& s = seg_.session(ref.slot);
  auto& r = seg_.record(rec);
  auto& stats = seg_.stats(client);
  std::uint64_t queued_ns;
  std::uint32_t next_in_line;  // the queue's head once this request queued: read under S
  bool at_head;
  DeferredWakes wakes;  // the holders' revoke threads are woken after S is unlocked (below)
  {
    SessionGuard g(seg_, ref.slot);
    if (shm::state(s, std::memory_order_relaxed) != shm::SessionState::kLive || s.generation != ref.gen)
      return Status(ErrorCode::kNotFound, "session was destroyed or expired");
    prepare_record(rec, ref, mode);
    // A grant at once reads no clock (a clock read is a sixth of this path): it counts as no
    // wait, and idle expiry needs no grant time, as the holder's unlocks and release mark
    // last_used_ns, and a held session is only ever asked back, never expired.
    const bool at_once = s.queue_head == shm::kNil && compatible(s, mode);
    if (at_once) grant(s, rec, 0);
    else enqueue(s, rec);
    if (Status st = withdraw_if_gone(s, client, rec, caller); !st) return st;
    if (at_once) {
      count_event(stats, shm::Counter::kGrants);  // its zero wait is added by collect_stats
      return RecordGrant{rec, r.token};
    }
    request_revoke(s, 0, &wakes);
    queued_ns = r.since_ns;
    next_in_line = s.queue_head;
    at_head = next_in_line == rec;
  }
  // The head spins a little before it wakes the holders' revoke threads: a holder that is using
  // the lock sees its flag at its next unlock and hands over within that, and no thread is woken
  // for it (two processes taking turns then never sleep). A holder that does not (idle, or busy
  // for longer) is woken after kHandBackSpin, and the head spins its full budget plus that once
  // more (the holder's answer then comes as late as it would have without the hand-back spin).
  if (at_head && spin_for_grant(r, deadline, kHandBackSpin) && shm::state(r) == RecordState::kGranted)
    wakes.drop();  // the holders it asked have let go
  wakes.flush();
  if (at_head) spin_for_grant(r, deadline, kSpinBudget + kHandBackSpin);
  auto granted = wait_for_grant(rec, ref, deadline, caller, at_head ? shm::kNil : next_in_line);
  if (granted) {
    const std::uint64_t now = mono_ns();
    count_event(stats, shm::Counter::kGrants);
    count_event(stats, shm::Counter::kHandoffs);
    record_latency(stats.wait_ns, now - queued_ns);
    record_latency(stats.handoff_ns, now - shm::load(r.since_ns, std::memory_order_relaxed));
  } else {
    count_event(stats, granted.code() == ErrorCode::kTimeout ? shm::Counter::kTimeouts : shm::Counter::kBroken);
  }
  return granted;
}

void LockTable::prepare_record(std::uint32_t rec, SessionRef ref, LockMode mode) {
  auto& r = seg_.record(rec);
  shm::set_mode(r, mode);
  shm::store(r.session, ref.slot, std::memory_order_relaxed);
  shm::store(r.session_gen, ref.gen, std::memory_order_relaxed);
  r.revoke = 0;
  r.revoke_at_ns = 0;
}

// The record is written only once the grant is certain: a busy answer leaves it as it was (kFree,
// owned by the caller), the session untouched, no holder asked (no request_revoke) and no wait counted.
Result<RecordGrant> LockTable::try_acquire(std::uint32_t client, std::uint32_t rec, SessionRef ref, LockMode mode,
                                 const Caller* caller, bool fast_only) {
  FastTry fast = acquire_fast(client, rec, ref, mode, caller);
  if (fast.claim == FastClaim::kGranted) return RecordGrant{rec, fast.token};
  if (fast.claim == FastClaim::kGone) return std::move(fast.why);
  if (fast_only && mode == LockMode::kExclusive) return not_idle();
  auto& s = seg_.session(ref.slot);
  SessionGuard g(seg_, ref.slot);
  if (shm::state(s, std::memory_order_relaxed) != shm::SessionState::kLive || s.generation != ref.gen)
    return Status(ErrorCode::kNotFound, "session was destroyed or expired");
  if (s.queue_head != shm::kNil || !compatible(s, mode))
    return locked_elsewhere();
  prepare_record(rec, ref, mode);
  grant(s, rec, 0);
  if (Status st = withdraw_if_gone(s, client, rec, caller); !st) return st;
  count_event(seg_.stats(client), shm::Counter::kGrants);
  return RecordGrant{rec, seg_.record(rec).token};
}

inline bool LockTable::stands(std::uint32_t client, const Caller* caller) const {
  const auto& cs = seg_.client(client);
  return shm::state(cs, std::memory_order_seq_cst) == shm::ClientState::kLive &&
         shm::load(seg_.header().retired, std::memory_order_seq_cst) == 0 && (!caller || cs.generation == caller->generation);
}

// The second half of two store-then-load handshakes, each of which stores its flag (seq_cst) and
// then breaks the records it finds: eviction (admin.cpp) stores the slot's kEvicted, retirement
// (Registry::retire) the header's `retired`. The record's state was just stored seq_cst; if either
// flag is up, or the slot is no longer the caller's, take the request back. REQUIRES: session mutex.
Status LockTable::withdraw_if_gone(shm::SessionSlot& s, std::uint32_t client, std::uint32_t rec, const Caller* caller) {
  if (stands(client, caller)) return {};
  return withdraw(s, rec, gone_why(client));
}

// What stands() found only goes one way (`retired` is never cleared; a registration that is no
// longer the caller's live one never is again: evicted, freed, or reused under a new generation),
// so gone_why, reading again later, finds a reason too; a reused slot reads as reclaimed.
Status LockTable::gone_why(std::uint32_t client) const {
  if (shm::load(seg_.header().retired, std::memory_order_seq_cst) != 0) return retired_status();
  if (shm::state(seg_.client(client), std::memory_order_seq_cst) == shm::ClientState::kLive)
    return Status(ErrorCode::kDetached, "this client's registration was reclaimed: attach again");
  return Status(ErrorCode::kDetached, "this client was evicted by an administrator (sessionctl evict-client)");
}

Status LockTable::withdraw(shm::SessionSlot& s, std::uint32_t rec, Status why) {
  const auto st = shm::state(seg_.record(rec));
  if (st == RecordState::kGranted || st == RecordState::kWaiting) remove_record(s, rec, RecordState::kFree);
  else shm::set_state(seg_.record(rec), RecordState::kFree);
  return why;
}

// The waiting owner's loop: sleep on the record's wake word until granted or the deadline, or
// until the caller's detach calls it back (it raises `cancelled`, then bumps `wake`).
Result<RecordGrant> LockTable::wait_for_grant(std::uint32_t rec, SessionRef ref, Clock::time_point deadline, const Caller* caller,
                                              std::uint32_t next_in_line) {
  auto& r = seg_.record(rec);
  Clock::duration slice = kLivenessSliceMin;
  bool slept = false;
  for (;;) {
    // Marked awake by the request behind it: cleared before `state` is read and the futex waits on
    // the value that leaves, so a grant from here on wakes it (lock_record.hpp, `wake`).
    std::uint32_t seen = shm::load(r.wake);
    if (seen & shm::kWakeAwake) seen = shm::fetch_and(r.wake, ~shm::kWakeAwake) & ~shm::kWakeAwake;
    if (caller && caller->cancelled->load(std::memory_order_acquire)) {
      SessionGuard g(seg_, ref.slot);
      return withdraw(seg_.session(ref.slot), rec, Status(ErrorCode::kDetached, "client detached while waiting for the lock"));
    }
    const RecordState st = shm::state(r);
    if (st == RecordState::kGranted) {
      if (slept) prefetch_for_grantee(rec, ref.slot);
      return RecordGrant{rec, r.token};
    }
    if (st != RecordState::kWaiting) {  // broken while we waited: destroyed, or the segment retired
      SessionGuard g(seg_, ref.slot);
      shm::set_state(r, RecordState::kFree);
      if (retired(seg_)) return retired_status();
      return Status(ErrorCode::kNotFound, "session was destroyed while waiting for its lock");
    }
    const auto now = Clock::now();
    if (now >= deadline) break;
    const auto slice_end = std::min(deadline, now + slice);
    if (!slept) wake_next_in_line(next_in_line);
    slept = true;
    const shm::WaitResult woke = shm::futex_wait(r.wake, seen, slice_end);
    if (woke == shm::WaitResult::kTimedOut && slice_end < deadline) {
      reclaim_dead_holders(ref.slot);
      slice = std::min<Clock::duration>(slice * 2, kLivenessSliceMax);
    } else if (woke == shm::WaitResult::kWoken) {
      spin_for_grant(r, deadline, kNextInLineSpin);  // at once when granted; else woken to be on a core
    }
  }
  // Deadline passed: leave the queue without a trace, unless the grant raced us.
  SessionGuard g(seg_, ref.slot);
  const RecordState st = shm::state(r);
  if (st == RecordState::kGranted) return RecordGrant{rec, r.token};
  if (st != RecordState::kWaiting) {
    shm::set_state(r, RecordState::kFree);
    if (retired(seg_)) return retired_status();
    return Status(ErrorCode::kNotFound, "session was destroyed while waiting for its lock");
  }
  remove_record(seg_.session(ref.slot), rec, RecordState::kFree);
  return Status(ErrorCode::kTimeout, "lock not granted before the deadline");
}

// docs/protocol.md §3 step 3. A request about to sleep behind others wakes the one next in line
// (the queue's head when it queued, read under S then), which watches its record for
// kNextInLineSpin before it sleeps again. The waker's core is about to be free: the next in line
// takes it, and is running when the holder's grant comes instead of being woken by it. With
// processes outnumbering cores the grant then no longer waits for a sleeper's wake-up
// (bench/results/hot-notes.md, "Where the grantee's time goes, the next in line, and a
// prefetch"). It marks the owner awake (kWakeAwake in `wake`, lock_record.hpp), so the grant that
// finds it watching makes no futex wake, and wakes it only if the mark was not already set. Only
// a hint: the record may have been granted since (nothing to do) or even queued again elsewhere
// (a spurious wake, which every waiter tolerates, and a mark its owner clears before it sleeps);
// nothing is written but the futex word. Not on one core, where the watch cannot run.
void LockTable::wake_next_in_line(std::uint32_t next_in_line) {
  if (next_in_line >= seg_.record_count() || !multicore()) return;
  auto& n = seg_.record(next_in_line);
  if (shm::state(n) != RecordState::kWaiting) return;
  if (mark_awake(n)) shm::futex_wake(n.wake);  // else awake already
}

// A grantee that slept finds the segment's lines written by the other core or pushed out of its
// caches by the processes that ran meanwhile, and its way to the next grant (its lock's return,
// get, commit, the grant pass) meets them one after another, each miss behind the code that
// leads to it. Asked for together here, their misses overlap: at 64 processes on 2 cores this
// (with the queue head's record as well, no longer read: `queue_head` is written plainly under S)
// took the grantee's time from its wake to its own grant's wake from 2.3-2.5 to 2.0-2.1 us
// (bench/results/hot-notes.md, "Where the grantee's time goes, the next in line, and a
// prefetch"). Hints, which never fault, and one relaxed load of the slot (`blob`, stored
// atomically): its index is bounds-checked before use.
void LockTable::prefetch_for_grantee(std::uint32_t rec, std::uint32_t slot) const {
  const auto& s = seg_.session(slot);
  const auto* sp = reinterpret_cast<const char*>(&s);
  for (std::size_t at = 0; at < offsetof(shm::SessionSlot, id); at += 64) __builtin_prefetch(sp + at, 1);
  const auto& h = seg_.header();
  __builtin_prefetch(&h.next_token, 1);   // the next grant's token
  __builtin_prefetch(&h.alloc_mutex, 1);  // the commit's blocks
  const std::uint32_t client = seg_.client_of_record(rec);
  __builtin_prefetch(&seg_.client(client), 0);
  __builtin_prefetch(&seg_.stats(client), 1);
  if (const std::uint32_t b = shm::load(s.blob, std::memory_order_relaxed); b < seg_.caps().block_count)
    __builtin_prefetch(&seg_.block(b), 0);  // the committed state, read next
}

Status LockTable::release(SessionRef ref, const RecordGrant& g) {
  if (g.record >= seg_.record_count()) return Status(ErrorCode::kNotHeld, "no such lock");
  if (release_fast(ref, g)) return {};
  auto& r = seg_.record(g.record);
  DeferredWakes wakes;  // the grantee is woken after S is unlocked (destroyed after the guard)
  SessionGuard guard(seg_, ref.slot);
  auto& s = seg_.session(ref.slot);
  const RecordState st = shm::state(r);
  auto& stats = seg_.stats(seg_.client_of_record(g.record));
  if (st == RecordState::kBroken) {
    shm::set_state(r, RecordState::kFree);
    count_event(stats, shm::Counter::kBroken);
    return Status(ErrorCode::kStaleToken, fmt::format("token {} was revoked before release", g.token));
  }
  if (st != RecordState::kGranted || r.token != g.token || r.session != ref.slot)
    return Status(ErrorCode::kNotHeld, fmt::format("token {} is not held (already released?)", g.token));
  if (shm::load(r.revoke) != 0) count_event(stats, shm::Counter::kRevokes);
  remove_record(s, g.record, RecordState::kFree, &wakes, shm::load(r.since_ns, std::memory_order_relaxed));
  return {};
}

bool LockTable::break_lock(std::uint32_t rec, std::uint64_t token) {
  if (rec >= seg_.record_count()) return false;
  auto& r = seg_.record(rec);
  const std::uint32_t slot = shm::load(r.session, std::memory_order_relaxed);
  if (slot >= seg_.caps().max_sessions) return false;
  SessionGuard guard(seg_, slot);
  if (shm::state(r) != RecordState::kGranted || r.token != token || r.session != slot) return false;
  remove_record(seg_.session(slot), rec, RecordState::kBroken);
  shm::bump_and_wake(seg_.client(seg_.client_of_record(rec)).notify);  // tell the owner it lost the lock
  return true;
}

// ---- the fast path (fast_owner.hpp; docs/protocol.md §2a) ----

// The record's fields and token are written while it is kFree and the caller's alone; the
// compare-and-swap of the word publishes them (idle -> owned); kGranted is stored after it, and the
// word read again: still ours, and any mutex holder that takes it from now on finds the record
// kGranted and links it; taken, and only the lists can say (confirm_fast). A failed publish
// leaves the record kFree and a token unused (tokens only have to increase).
LockTable::FastClaim LockTable::claim_fast(std::uint32_t client, std::uint32_t rec, SessionRef ref,
                                           const Caller* caller, std::uint64_t& token, Status& why) {
  if (ref.slot >= seg_.caps().max_sessions) return FastClaim::kNotIdle;
  auto& s = seg_.session(ref.slot);
  std::uint64_t word = fast::idle(ref.gen);
  if (shm::load(s.fast, std::memory_order_relaxed) != word) return FastClaim::kNotIdle;
  auto& r = seg_.record(rec);
  shm::set_mode(r, LockMode::kExclusive);
  shm::store(r.session, ref.slot, std::memory_order_relaxed);
  shm::store(r.session_gen, ref.gen, std::memory_order_relaxed);
  shm::store(r.revoke, 0u, std::memory_order_relaxed);
  r.revoke_at_ns = 0;
  r.since_ns = 0;
  r.next = shm::kNil;
  token = shm::fetch_add<std::uint64_t>(seg_.header().next_token, 1);
  shm::store(r.token, token, std::memory_order_relaxed);
  // seq_cst: with the state's store below, the half of the eviction and retirement handshakes
  // that withdraw_if_gone is on the mutex path (stands reads their flags after both).
  if (!shm::compare_exchange(s.fast, word, fast::owned(ref.gen, rec), std::memory_order_seq_cst)) return FastClaim::kNotIdle;
  test_point(TestPoint::kFastPublished);
  shm::set_state(r, RecordState::kGranted, std::memory_order_seq_cst);  // only the owner moves it out of kFree
  if (shm::load(s.fast, std::memory_order_seq_cst) != fast::owned(ref.gen, rec)) {
    auto confirmed = confirm_fast(client, rec, ref, caller);
    if (!confirmed) return FastClaim::kNotIdle;
    if (!*confirmed) {
      why = confirmed->status();
      return FastClaim::kGone;
    }
    token = (*confirmed)->token;
    return FastClaim::kGranted;
  }
  if (!stands(client, caller)) [[unlikely]] {
    why = gone_why(client);
    (void)release(ref, RecordGrant{rec, token});
    return FastClaim::kGone;
  }
  count_event(seg_.stats(client), shm::Counter::kGrants);
  shm::fetch_add<std::uint64_t>(s.grants, 1, std::memory_order_relaxed);
  return FastClaim::kGranted;
}

// Busy answers are routine under contention: Fixed, so that giving one allocates nothing.
Status LockTable::not_idle() {
  static const Status::Fixed kNotIdle(ErrorCode::kBusy, "the session is not idle (this try takes only the fast path)");
  return kNotIdle;
}

Status LockTable::locked_elsewhere() {
  static const Status::Fixed kLocked(ErrorCode::kBusy, "the session is locked by another process (try-lock: nothing queued)");
  return kLocked;
}

LockTable::FastTry LockTable::acquire_fast(std::uint32_t client, std::uint32_t rec, SessionRef ref, LockMode mode,
                                           const Caller* caller) {
  FastTry t;
  if (mode == LockMode::kExclusive) t.claim = claim_fast(client, rec, ref, caller, t.token, t.why);
  return t;
}

std::optional<Result<RecordGrant>> LockTable::confirm_fast(std::uint32_t client, std::uint32_t rec, SessionRef ref,
                                                           const Caller* caller) {
  auto& s = seg_.session(ref.slot);
  auto& r = seg_.record(rec);
  SessionGuard g(seg_, ref.slot);  // absorbs: a word still ours puts the record on the list
  bool linked = false;
  for (std::uint32_t h = s.holders_head, steps = 0; h != shm::kNil && steps++ < seg_.record_count(); h = seg_.record(h).next)
    if (h == rec) linked = true;
  if (linked && shm::state(r) == RecordState::kGranted) {
    if (Status st = withdraw_if_gone(s, client, rec, caller); !st) return Result<RecordGrant>(std::move(st));
    count_event(seg_.stats(client), shm::Counter::kGrants);
    shm::fetch_add<std::uint64_t>(s.grants, 1, std::memory_order_relaxed);
    return Result<RecordGrant>(RecordGrant{rec, r.token});
  }
  // Not a holder: absorbed while still kFree (left off the list), or broken since. Back to kFree;
  // the caller asks again the mutex way, behind whoever came meanwhile.
  if (linked) unlink(s, rec);
  r.next = shm::kNil;
  shm::set_state(r, RecordState::kFree);
  return std::nullopt;
}

// kGranted -> kReleasing first (fails if the grant was broken: the mutex path reports it), then
// the word (owned -> idle), then kFree. If a mutex holder absorbed the word before our
// kReleasing, it put the record on the holder list: it comes off under the mutex, with the grant
// pass that lets the next one in.
bool LockTable::release_fast(SessionRef ref, const RecordGrant& g) {
  if (ref.slot >= seg_.caps().max_sessions) return false;
  auto& s = seg_.session(ref.slot);
  auto& r = seg_.record(g.record);
  std::uint64_t word = fast::owned(ref.gen, g.record);
  if (shm::load(s.fast, std::memory_order_relaxed) != word || shm::load(r.token, std::memory_order_relaxed) != g.token)
    return false;
  std::uint32_t st = shm::word(RecordState::kGranted);
  if (!shm::compare_exchange(r.state, st, shm::word(RecordState::kReleasing), std::memory_order_acq_rel)) return false;
  // Asked back with nobody queued (the broker's idle expiry asks a cached lock back): counted as release does.
  if (shm::load(r.revoke) != 0) count_event(seg_.stats(seg_.client_of_record(g.record)), shm::Counter::kRevokes);
  shm::mark_used(s);  // no clock: the broker dates it
  test_point(TestPoint::kFastReleasing);
  // acq_rel: the word may come from a settle, whose section read this record (its mode) before.
  if (shm::compare_exchange(s.fast, word, fast::idle(ref.gen), std::memory_order_acq_rel)) {
    shm::set_state(r, RecordState::kFree);
    return true;
  }
  DeferredWakes wakes;  // destroyed after the guard: the grantee is woken once the mutex is let go
  SessionGuard guard(seg_, ref.slot);
  remove_record(s, g.record, RecordState::kFree, &wakes);  // off the list if absorbed onto it; the grant pass
  return true;
}

GrantStatus LockTable::grant_status(const RecordGrant& g) const {
  if (g.record >= seg_.record_count()) return GrantStatus::kLost;
  return grant_status_of(seg_.record(g.record));
}

void LockTable::touch(SessionRef ref) {
  auto& s = seg_.session(ref.slot);
  // A revoke thread touches after the fact: the session may have been destroyed and its slot
  // reused since, and another session's idle clock is not ours to reset.
  if (shm::load(s.generation, std::memory_order_relaxed) != ref.gen) return;
  shm::mark_used(s);
}

// Holders are read under the session mutex, but their liveness (a /proc read) is checked after
// it is released, so waiters never slow the lock path down.
void LockTable::reclaim_dead_holders(std::uint32_t slot) {
  struct Holder {
    std::uint32_t client, generation;
    std::int32_t pid;
    std::uint64_t start_time;
  };
  std::vector<Holder> holders;
  {
    SessionGuard g(seg_, slot);
    auto& s = seg_.session(slot);
    for (std::uint32_t h = s.holders_head; h != shm::kNil; h = seg_.record(h).next) {
      const std::uint32_t c = seg_.client_of_record(h);
      const auto& cs = seg_.client(c);
      holders.push_back({c, cs.generation, cs.pid, cs.start_time});
    }
  }
  for (const Holder& h : holders)
    if (check_liveness(h.pid, h.start_time) == Liveness::kDead) reclaimer_.reclaim_if_dead(h.client, h.generation);
}

}  // namespace sessionbroker::detail

namespace sessionbroker::detail {
namespace {
Status stale_grant(const RecordGrant& g) {
  return Status(ErrorCode::kStaleToken, fmt::format("token {} no longer holds the session lock", g.token));
}
}  // namespace

// The holder's expiry operations take the session mutex only: `ttl_ms` and `last_used_ns` are
// written under it (the broker's first, unlocked look at them in expire_if_idle is a relaxed hint
// it checks again under the mutexes), and holds() fences a grant lost since it was taken.
Status LockTable::set_ttl(SessionRef ref, const RecordGrant& g, std::uint64_t ttl_ms) {
  auto& s = seg_.session(ref.slot);
  SessionGuard sg(seg_, ref.slot);
  if (!holds(seg_, s, ref, g)) return stale_grant(g);
  shm::store(s.ttl_ms, ttl_ms ? ttl_ms : seg_.caps().default_ttl_ms, std::memory_order_relaxed);
  shm::store(s.last_used_ns, mono_ns(), std::memory_order_relaxed);
  return {};
}

Status LockTable::touch(SessionRef ref, const RecordGrant& g) {
  auto& s = seg_.session(ref.slot);
  SessionGuard sg(seg_, ref.slot);
  if (!holds(seg_, s, ref, g)) return stale_grant(g);
  shm::store(s.last_used_ns, mono_ns(), std::memory_order_relaxed);
  return {};
}

Result<std::optional<std::uint64_t>> LockTable::ttl_remaining(SessionRef ref, const RecordGrant& g) {
  auto& s = seg_.session(ref.slot);
  SessionGuard sg(seg_, ref.slot);
  if (!holds(seg_, s, ref, g)) return stale_grant(g);
  const std::uint64_t ttl = shm::load(s.ttl_ms, std::memory_order_relaxed);
  if (ttl == 0) return std::optional<std::uint64_t>();
  const std::uint64_t now = mono_ns();
  const std::uint64_t end = saturating_add(shm::last_used_at(s, now), ms_to_ns(ttl));
  const std::uint64_t left_ns = end > now ? end - now : 0;
  return std::optional<std::uint64_t>(left_ns / 1'000'000 + (left_ns % 1'000'000 != 0));  // rounded up
}

Result<std::vector<std::int32_t>> LockTable::holder_pids(SessionRef ref) {
  if (ref.slot >= seg_.caps().max_sessions) return Status(ErrorCode::kNotFound, "no such session");
  auto& s = seg_.session(ref.slot);
  SessionGuard sg(seg_, ref.slot);
  if (shm::state(s, std::memory_order_relaxed) != shm::SessionState::kLive || s.generation != ref.gen)
    return Status(ErrorCode::kNotFound, "session was destroyed or expired");
  std::vector<std::int32_t> pids;
  std::uint32_t steps = 0;
  for (std::uint32_t h = s.holders_head; h < seg_.record_count() && steps++ < seg_.record_count(); h = seg_.record(h).next)
    pids.push_back(seg_.client(seg_.client_of_record(h)).pid);
  return pids;
}

}  // namespace sessionbroker::detail
