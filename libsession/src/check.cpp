#include "check.hpp"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "blob.hpp"
#include "guards.hpp"

namespace sessionbroker::detail {
namespace {

using shm::ClientState;
using shm::LockMode;
using shm::RecordState;
using shm::SessionState;

// The names of shm_layout/LAYOUT.md "Invariants", as `sessionctl check` prints them. I2 (fencing) and
// I6 (no lost or ghost waiter) are about history and timing; what the segment shows of them is I4,
// I8, I9 and I12.
constexpr const char* kI1 = "I1 one exclusive holder or shared holders, never both";
constexpr const char* kI3 = "I3 tokens strictly increase and are never reused";
constexpr const char* kI4 = "I4 FIFO queue in ticket order, head not grantable";
constexpr const char* kI5 = "I5 committed state is whole";
constexpr const char* kI8 = "I8 the lists are the records";
constexpr const char* kI9 = "I9 holders are asked to release while anyone waits";
constexpr const char* kI10 = "I10 the allocator's one rule";
constexpr const char* kI11 = "I11 the registry accounts for every slot";
constexpr const char* kI12 = "I12 every linked record has an owner";

class Checker {
 public:
  explicit Checker(Segment& seg) : seg_(seg) {}

  CheckReport run() {
    check_registry();
    group_records();
    for (std::uint32_t slot = 0; slot < seg_.caps().max_sessions; ++slot) check_session(slot);
    check_blocks();
    return std::move(report_);
  }

 private:
  template <class... Args>
  void violation(const char* inv, fmt::format_string<Args...> f, Args&&... args) {
    report_.violations.push_back({inv, fmt::format(f, std::forward<Args>(args)...)});
  }

  // Registry mutex (I11): index <-> live sessions, session free list, counts, client states.
  void check_registry() {
    auto g = registry_guard(seg_);
    auto& h = seg_.header();
    std::uint32_t live = 0, free_listed = 0;
    std::vector<bool> indexed(seg_.caps().max_sessions, false);
    for (std::uint32_t i = 0; i < seg_.index_size(); ++i) {
      const std::uint32_t slot = seg_.index_word(i);
      if (slot == shm::kIndexEmpty || slot == shm::kIndexTombstone) continue;
      if (slot >= seg_.caps().max_sessions || shm::state(seg_.session(slot), std::memory_order_relaxed) != SessionState::kLive ||
          indexed[slot]) {
        violation(kI11, "index word {} names slot {}, which is free, out of range or indexed twice", i, slot);
        continue;
      }
      indexed[slot] = true;
    }
    for (std::uint32_t slot = 0; slot < seg_.caps().max_sessions; ++slot) {
      if (shm::state(seg_.session(slot), std::memory_order_relaxed) != SessionState::kLive) continue;
      ++live;
      if (!indexed[slot]) violation(kI11, "live session slot {} ('{}') is not in the index", slot, id_of(slot));
    }
    std::vector<bool> on_free_list(seg_.caps().max_sessions, false);
    for (std::uint32_t slot = h.session_free_head, steps = 0; slot != shm::kNil; slot = seg_.session(slot).free_next) {
      if (slot >= seg_.caps().max_sessions || ++steps > seg_.caps().max_sessions || on_free_list[slot]) {
        violation(kI11, "session free list is corrupt (bad link or cycle at {})", slot);
        break;
      }
      on_free_list[slot] = true;
      ++free_listed;
      if (shm::state(seg_.session(slot), std::memory_order_relaxed) == SessionState::kLive)
        violation(kI11, "live session slot {} is on the free list", slot);
    }
    if (live + free_listed != seg_.caps().max_sessions)
      violation(kI11, "{} live + {} free session slots != capacity {}", live, free_listed, seg_.caps().max_sessions);
    if (h.session_count != live) violation(kI11, "session_count {} but {} live sessions", h.session_count, live);
    std::uint32_t clients = 0;
    for (std::uint32_t c = 0; c < seg_.caps().max_clients; ++c) {
      const auto st = shm::state(seg_.client(c));
      if (st == ClientState::kLive || st == ClientState::kEvicted) ++clients;
      if (st == ClientState::kEvicted)
        report_.notes.push_back(fmt::format("client {} (pid {}) was evicted, waiting for it to detach", c, seg_.client(c).pid));
      if (st == ClientState::kDead) report_.notes.push_back(fmt::format("client {} (pid {}) is dead, reclaim pending", c, seg_.client(c).pid));
    }
    if (h.client_count != clients) violation(kI11, "client_count {} but {} live clients", h.client_count, clients);
    report_.sessions = live;
    report_.clients = clients;
  }

  // Candidate records per session, read without mutexes; each session re-checks its own under its mutex.
  void group_records() {
    by_session_.assign(seg_.caps().max_sessions, {});
    for (std::uint32_t rec = 0; rec < seg_.record_count(); ++rec) {
      const auto& r = seg_.record(rec);
      const auto st = shm::state(r);
      if (st != RecordState::kGranted && st != RecordState::kWaiting) continue;
      const std::uint32_t slot = shm::load(r.session, std::memory_order_relaxed);
      if (slot < seg_.caps().max_sessions) by_session_[slot].push_back(rec);
      else violation(kI12, "record {} is linked but names session slot {}", rec, slot);
    }
  }

  void check_session(std::uint32_t slot) {
    auto& s = seg_.session(slot);
    if (shm::state(s, std::memory_order_relaxed) != SessionState::kLive &&
        by_session_[slot].empty())
      return;
    SessionGuard guard(seg_, slot);
    const bool live = shm::state(s, std::memory_order_relaxed) == SessionState::kLive;
    std::vector<std::uint32_t> holders, queue;
    if (!walk(s.holders_head, holders) || !walk(s.queue_head, queue)) {
      violation(kI8, "session '{}': holder list or queue is cyclic or out of range", id_of(slot));
      return;
    }
    check_lists_match_records(slot, s, holders, queue);
    check_modes(slot, s, holders, queue);
    for (std::uint32_t rec : holders) check_owner(slot, rec, "holder");
    for (std::uint32_t rec : queue) check_owner(slot, rec, "waiter");
    if (!live && !(holders.empty() && queue.empty())) violation(kI12, "free session slot {} has holders or waiters", slot);
    report_.holders += static_cast<std::uint32_t>(holders.size());
    report_.waiters += static_cast<std::uint32_t>(queue.size());
  }

  bool walk(std::uint32_t head, std::vector<std::uint32_t>& out) {
    for (std::uint32_t rec = head; rec != shm::kNil; rec = seg_.record(rec).next) {
      if (rec >= seg_.record_count() || out.size() > seg_.record_count()) return false;
      out.push_back(rec);
    }
    return true;
  }

  void check_lists_match_records(std::uint32_t slot, const shm::SessionSlot& s, const std::vector<std::uint32_t>& holders,
                                 const std::vector<std::uint32_t>& queue) {
    auto expect_state = [&](const std::vector<std::uint32_t>& list, RecordState want, const char* what) {
      for (std::uint32_t rec : list) {
        const auto& r = seg_.record(rec);
        if (shm::state(r, std::memory_order_relaxed) != want || r.session != slot || r.session_gen != s.generation)
          violation(kI8, "session '{}': {} list holds record {} in state {} for slot {}", id_of(slot), what, rec, r.state, r.session);
      }
    };
    expect_state(holders, RecordState::kGranted, "holder");
    expect_state(queue, RecordState::kWaiting, "queue");
    for (std::uint32_t rec : by_session_[slot]) {
      const auto& r = seg_.record(rec);
      const auto st = shm::state(r, std::memory_order_relaxed);
      if (r.session != slot || (st != RecordState::kGranted && st != RecordState::kWaiting)) continue;  // moved on
      const auto& list = st == RecordState::kGranted ? holders : queue;
      if (std::find(list.begin(), list.end(), rec) == list.end())
        violation(kI8, "session '{}': record {} is {} but on no list (a ghost)", id_of(slot), rec,
                  st == RecordState::kGranted ? "granted" : "waiting");
    }
    if (s.holder_count != holders.size())
      violation(kI1, "session '{}': holder_count says {} holders, the list has {}", id_of(slot), s.holder_count, holders.size());
    if (s.queue_len != queue.size())
      violation(kI8, "session '{}': queue_len says {} waiters, the queue has {}", id_of(slot), s.queue_len, queue.size());
    if ((queue.empty() ? shm::kNil : queue.back()) != s.queue_tail)
      violation(kI8, "session '{}': queue tail {} is not the last waiter", id_of(slot), s.queue_tail);
    for (std::size_t i = 1; i < queue.size(); ++i)
      if (seg_.record(queue[i - 1]).ticket >= seg_.record(queue[i]).ticket)
        violation(kI4, "session '{}': queue out of ticket order at position {}", id_of(slot), i);
  }

  void check_modes(std::uint32_t slot, const shm::SessionSlot& s, const std::vector<std::uint32_t>& holders,
                   const std::vector<std::uint32_t>& queue) {
    std::uint32_t exclusive = 0;
    for (std::uint32_t rec : holders) {
      const auto& r = seg_.record(rec);
      exclusive += shm::mode(r) == LockMode::kExclusive;
      if (r.token == 0 || r.token >= shm::load(seg_.header().next_token))
        violation(kI3, "session '{}': holder record {} has token {} that was never issued", id_of(slot), rec, r.token);
      if (!tokens_.insert(r.token).second) violation(kI3, "token {} is held twice", r.token);
    }
    const auto mode = shm::lock_mode(s);
    const bool consistent = holders.empty() ? mode == LockMode::kNone
                            : exclusive > 0 ? exclusive == 1 && holders.size() == 1 && mode == LockMode::kExclusive
                                            : mode == LockMode::kShared;
    if (!consistent)
      violation(kI1, "session '{}': mode {} with {} holders of which {} exclusive", id_of(slot), s.lock_mode, holders.size(), exclusive);
    if (queue.empty()) return;
    const auto head_mode = shm::mode(seg_.record(queue.front()));
    if (holders.empty() || (head_mode == LockMode::kShared && mode == LockMode::kShared))
      violation(kI4, "session '{}': the queue head is grantable but waits (a lost wake-up)", id_of(slot));
    for (std::uint32_t rec : holders)
      if (shm::load(seg_.record(rec).revoke) == 0)
        violation(kI9, "session '{}': holder record {} was not asked to release although {} wait", id_of(slot), rec, queue.size());
  }

  void check_owner(std::uint32_t slot, std::uint32_t rec, const char* role) {
    const auto st = shm::state(seg_.client(seg_.client_of_record(rec)));
    if (st == ClientState::kFree)
      violation(kI12, "session '{}': {} record {} belongs to a client slot that is free", id_of(slot), role, rec);
  }

  // Alloc mutex (I10, I5): every block is exactly one of: in one session blob, in one pending blob, free.
  void check_blocks() {
    auto g = alloc_guard(seg_);
    const std::uint32_t n = seg_.caps().block_count;
    owner_.assign(n, kUnowned);
    for (std::uint32_t slot = 0; slot < seg_.caps().max_sessions; ++slot) {
      const auto& s = seg_.session(slot);
      if (s.blob == shm::kNil) continue;
      if (shm::state(s, std::memory_order_relaxed) != SessionState::kLive) violation(kI10, "free session slot {} keeps a blob", slot);
      report_.blocks_used += mark(s.blob, slot, "session blob");
      if (!for_each_entry(seg_, s.blob, [](std::string_view, std::uint32_t len, ChainReader& in) { return in.read(nullptr, len); }))
        violation(kI5, "session '{}': committed blob does not parse", id_of(slot));
    }
    for (std::uint32_t c = 0; c < seg_.caps().max_clients; ++c) {
      const std::uint32_t head = seg_.client(c).pending_blob;
      if (head != shm::kNil) report_.blocks_pending += mark(head, kPendingBase + c, "pending blob");
    }
    std::uint32_t free_walked = 0;
    for (std::uint32_t b = seg_.header().free_head; b != shm::kNil; b = seg_.block(b).next) {
      if (b >= n || owner_[b] != kUnowned) {
        violation(kI10, "free list reaches block {} that is {}", b, b >= n ? "out of range" : "in use or already free");
        break;
      }
      owner_[b] = kFreeOwner;
      ++free_walked;
    }
    if (free_walked != seg_.header().free_count)
      violation(kI10, "free_count {} but the free list has {} blocks", seg_.header().free_count, free_walked);
    const std::uint32_t leaked = static_cast<std::uint32_t>(std::count(owner_.begin(), owner_.end(), kUnowned));
    if (leaked) violation(kI10, "{} blocks are neither free nor reachable from any blob (leaked)", leaked);
    report_.blocks_free = free_walked;
  }

  std::uint32_t mark(std::uint32_t head, std::uint32_t who, const char* what) {
    std::uint32_t count = 0;
    for (std::uint32_t b = head; b != shm::kNil; b = seg_.block(b).next) {
      if (b >= seg_.caps().block_count) {
        violation(kI10, "{} of owner {} links to block {} out of range", what, who, b);
        break;
      }
      if (owner_[b] != kUnowned) {
        violation(kI10, "{} of owner {} reaches block {} already owned by {}", what, who, b, owner_[b]);
        break;
      }
      owner_[b] = who;
      ++count;
    }
    return count;
  }

  std::string id_of(std::uint32_t slot) const {
    return std::string(shm::session_id(seg_.session(slot)));
  }

  static constexpr std::uint32_t kUnowned = shm::kNil, kFreeOwner = shm::kNil - 1, kPendingBase = 1u << 30;
  Segment& seg_;
  CheckReport report_;
  std::vector<std::vector<std::uint32_t>> by_session_;
  std::vector<std::uint32_t> owner_;
  std::set<std::uint64_t> tokens_;
};

}  // namespace

CheckReport check_segment(Segment& seg) { return Checker(seg).run(); }

}  // namespace sessionbroker::detail
