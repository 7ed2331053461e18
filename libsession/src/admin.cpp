// Administrator actions (sessionctl break-lock / evict-client). Both go through the same
// remove_record path as a revoke deadline, so waiters are granted and tokens fenced exactly as
// there; see LAYOUT.md "Eviction".
#include <fmt/format.h>

#include "admin.hpp"
#include "blob.hpp"
#include "clock.hpp"
#include "guards.hpp"

namespace sessionbroker::detail {

using shm::ClientState;
using shm::RecordState;

Result<std::vector<std::uint64_t>> Admin::break_session_locks(SessionRef ref) {
  std::vector<std::uint64_t> broken;
  std::vector<std::uint32_t> owners;
  {
    SessionGuard g(seg_, ref.slot);
    auto& s = seg_.session(ref.slot);
    if (shm::state(s, std::memory_order_relaxed) != shm::SessionState::kLive || s.generation != ref.gen)
      return Status(ErrorCode::kNotFound, "session was destroyed or expired");
    // remove_record grants the queue head into the holder list: take the holders first.
    std::vector<std::uint32_t> holders;
    for (std::uint32_t h = s.holders_head; h != shm::kNil; h = seg_.record(h).next) holders.push_back(h);
    for (std::uint32_t h : holders) {
      broken.push_back(seg_.record(h).token);
      owners.push_back(seg_.client_of_record(h));
      locks_.remove_record(s, h, RecordState::kBroken);
    }
  }
  for (std::uint32_t c : owners) shm::bump_and_wake(seg_.client(c).notify);  // they hear kLost
  return broken;
}

std::optional<std::uint32_t> Admin::find_client(pid_t pid) const {
  for (std::uint32_t c = 0; c < seg_.caps().max_clients; ++c) {
    const auto& cs = seg_.client(c);
    if (shm::state(cs) == ClientState::kLive && cs.pid == pid) return c;
  }
  return std::nullopt;
}

// Order matters: the slot is marked kEvicted (seq_cst) before its records are read (seq_cst), and
// acquire() stores a record's state (seq_cst) before it reads the slot's state (seq_cst). So a
// request racing the eviction is either seen here and broken, or sees kEvicted and withdraws itself.
Result<int> Admin::evict_client(std::uint32_t client, std::uint32_t generation) {
  if (client >= seg_.caps().max_clients) return Status(ErrorCode::kInvalidArgument, "no such client slot");
  auto& cs = seg_.client(client);
  auto g = registry_guard(seg_);
  if (shm::state(cs) != ClientState::kLive || cs.generation != generation)
    return Status(ErrorCode::kNotFound, "client is no longer attached");
  shm::set_state(cs, ClientState::kEvicted, std::memory_order_seq_cst);
  int n = 0;
  const std::uint32_t first = seg_.first_record_of(client);
  for (std::uint32_t rec = first; rec < first + seg_.caps().locks_per_client; ++rec) {
    auto& r = seg_.record(rec);
    const auto st = shm::state(r, std::memory_order_seq_cst);
    if (st != RecordState::kGranted && st != RecordState::kWaiting) continue;
    const std::uint32_t slot = shm::load(r.session, std::memory_order_relaxed);
    if (slot >= seg_.caps().max_sessions) continue;
    SessionGuard sg(seg_, slot);
    const auto now = shm::state(r);
    if (r.session != slot || (now != RecordState::kGranted && now != RecordState::kWaiting)) continue;
    locks_.remove_record(seg_.session(slot), rec, RecordState::kBroken);
    shm::bump_and_wake(r.wake);  // a queued request wakes and sees kBroken
    ++n;
  }
  shm::bump_and_wake(cs.notify);
  shm::bump_and_wake(seg_.header().registry_epoch);
  return n;
}

// The records are read without a mutex (a hint: a record asked and still granted); break_lock
// re-checks state, token and session under the session mutex before it breaks anything.
std::vector<BrokenGrant> Admin::break_overdue_revokes(std::uint64_t now, std::uint64_t deadline_ns) {
  std::vector<BrokenGrant> broken;
  if (deadline_ns == 0) return broken;
  for (std::uint32_t rec = 0; rec < seg_.record_count(); ++rec) {
    const auto& r = seg_.record(rec);
    if (shm::state(r) != RecordState::kGranted || shm::load(r.revoke) == 0) continue;
    const std::uint64_t asked = shm::load(r.revoke_at_ns, std::memory_order_relaxed);
    const std::uint64_t token = shm::load(r.token, std::memory_order_relaxed);
    if (asked == 0 || now < saturating_add(asked, deadline_ns)) continue;
    if (locks_.break_lock(rec, token)) broken.push_back({seg_.client_of_record(rec), token});
  }
  return broken;
}

// Consistent per-session copies for tools (dump, check). Each snapshot is taken under the
// session's mutex, so it shows one instant of that session; sessions are not frozen together.
std::optional<SessionSnapshot> Admin::snapshot(std::uint32_t slot) {
  if (slot >= seg_.caps().max_sessions) return std::nullopt;
  auto& s = seg_.session(slot);
  if (shm::state(s, std::memory_order_relaxed) != shm::SessionState::kLive)
    return std::nullopt;
  SessionGuard guard(seg_, slot);
  if (shm::state(s, std::memory_order_relaxed) != shm::SessionState::kLive) return std::nullopt;
  SessionSnapshot snap{};
  snap.slot = slot;
  snap.id.assign(shm::session_id(s));
  snap.mode = shm::lock_mode(s);
  snap.version = s.version;
  snap.grants = s.grants;
  snap.waits = s.waits;
  snap.ttl_ms = s.ttl_ms;
  const std::uint64_t now = mono_ns(), last = shm::last_used_at(s, now);
  snap.idle_ms = now > last ? (now - last) / 1'000'000 : 0;
  std::uint32_t guard_steps = 0;
  for (std::uint32_t h = s.holders_head; h < seg_.record_count() && guard_steps++ < seg_.record_count(); h = seg_.record(h).next) {
    const auto& r = seg_.record(h);
    const std::uint32_t c = seg_.client_of_record(h);
    snap.holders.push_back({c, seg_.client(c).pid, shm::mode(r), r.token, shm::load(r.revoke) != 0});
  }
  for (std::uint32_t w = s.queue_head; w < seg_.record_count() && guard_steps++ < seg_.record_count(); w = seg_.record(w).next) {
    const auto& r = seg_.record(w);
    const std::uint32_t c = seg_.client_of_record(w);
    snap.queue.push_back({c, seg_.client(c).pid, shm::mode(r), r.ticket});
  }
  for_each_entry(seg_, s.blob, [&](std::string_view n, std::uint32_t len, ChainReader& in) {
    snap.attrs.push_back({std::string(n), len});
    return in.read(nullptr, len);
  });
  return snap;
}

}  // namespace sessionbroker::detail
