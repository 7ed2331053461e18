// The one place that repairs. Each routine runs with its mutex held after the previous owner died
// (EOWNERDEAD) and restores every invariant of the structure that mutex guards, whatever step the
// dead owner was at: registry I11 and I12, session I1, I4, I8 and I9, allocator I10. LAYOUT.md
// section "Repair summary".
#include <algorithm>
#include <vector>

#include "lock_table.hpp"
#include "registry.hpp"
#include "repair.hpp"

namespace sessionbroker::detail {

using shm::RecordState;

// Registry: the index and the session free list are derived data, rebuilt from the session table;
// clients the dead owner was reclaiming (kDead) are reclaimed to the end.
void Repair::repair_registry() {
  auto& h = seg_.header();
  shm::fetch_add<std::uint64_t>(h.repairs, 1);
  Registry registry(seg_);
  registry.index_rebuild();
  std::uint32_t live = 0;
  for (std::uint32_t c = 0; c < seg_.caps().max_clients; ++c) {
    const auto st = shm::state(seg_.client(c));
    if (st == shm::ClientState::kDead) registry.reclaim_client_locked(c);
    else if (st == shm::ClientState::kLive || st == shm::ClientState::kEvicted) ++live;
  }
  h.client_count = live;
  shm::bump_and_wake(h.registry_epoch);
}

// Session: holders, queue, counts and mode are derived from the records' state words, which are
// always whole. Waiters keep their FIFO order through their tickets. Then grant what is grantable
// and wake every waiter (a spurious wake is harmless; a missed one would not be).
void Repair::repair_session(std::uint32_t slot) {
  auto& s = seg_.session(slot);
  shm::fetch_add<std::uint64_t>(seg_.header().repairs, 1);
  std::vector<std::uint32_t> holders, waiters;
  if (shm::state(s, std::memory_order_relaxed) == shm::SessionState::kLive) {
    for (std::uint32_t rec = 0; rec < seg_.record_count(); ++rec) {
      auto& r = seg_.record(rec);
      const auto st = shm::state(r);
      if ((st != RecordState::kGranted && st != RecordState::kWaiting) ||
          shm::load(r.session, std::memory_order_relaxed) != slot ||
          shm::load(r.session_gen, std::memory_order_relaxed) != s.generation)
        continue;
      (st == RecordState::kGranted ? holders : waiters).push_back(rec);
    }
  }
  std::sort(waiters.begin(), waiters.end(),
            [&](std::uint32_t a, std::uint32_t b) { return seg_.record(a).ticket < seg_.record(b).ticket; });
  s.holders_head = s.queue_head = s.queue_tail = shm::kNil;
  s.holder_count = s.queue_len = 0;
  shm::set_lock_mode(s, shm::LockMode::kNone);
  for (std::uint32_t rec : holders) {
    auto& r = seg_.record(rec);
    r.next = s.holders_head;
    s.holders_head = rec;
    ++s.holder_count;
    shm::set_lock_mode(s, std::max(shm::lock_mode(s), shm::mode(r)));
  }
  for (std::uint32_t rec : waiters) {
    auto& r = seg_.record(rec);
    r.next = shm::kNil;
    if (s.queue_tail == shm::kNil) s.queue_head = rec;
    else seg_.record(s.queue_tail).next = rec;
    s.queue_tail = rec;
    ++s.queue_len;
    s.next_ticket = std::max(s.next_ticket, r.ticket + 1);
  }
  Registry registry(seg_);
  LockTable(seg_, registry).grant_waiters(s);
  for (std::uint32_t rec : waiters) shm::bump_and_wake(seg_.record(rec).wake);
}

// Allocator: a block is in use exactly when a session's committed blob or a client's pending blob
// reaches it. Mark those, drop pending blobs that were already published, and rebuild the free
// list from everything unmarked. Walks are bounded, so a corrupt chain cannot hang the repair.
void Repair::repair_alloc() {
  auto& h = seg_.header();
  shm::fetch_add<std::uint64_t>(h.repairs, 1);
  const std::uint32_t nblocks = seg_.caps().block_count;
  std::vector<bool> used(nblocks, false);
  auto mark_chain = [&](std::uint32_t head) {
    for (std::uint32_t b = head, steps = 0; b < nblocks && !used[b] && steps < nblocks; b = seg_.block(b).next, ++steps)
      used[b] = true;
  };
  for (std::uint32_t slot = 0; slot < seg_.caps().max_sessions; ++slot) {
    auto& s = seg_.session(slot);
    if (shm::state(s) != shm::SessionState::kLive) shm::store(s.blob, shm::kNil);
    mark_chain(s.blob);
  }
  for (std::uint32_t c = 0; c < seg_.caps().max_clients; ++c) {
    auto& cs = seg_.client(c);
    const bool free_slot = shm::state(cs) == shm::ClientState::kFree;
    if (cs.pending_blob != shm::kNil && (free_slot || cs.pending_blob >= nblocks || used[cs.pending_blob]))
      cs.pending_blob = shm::kNil;  // published already (or garbage): not pending any more
    mark_chain(cs.pending_blob);
  }
  h.free_head = shm::kNil;
  std::uint32_t free_count = 0;
  for (std::uint32_t b = nblocks; b-- > 0;) {
    if (used[b]) continue;
    seg_.block(b).next = h.free_head;
    h.free_head = b;
    ++free_count;
  }
  shm::store(h.free_count, free_count);
}

}  // namespace sessionbroker::detail
