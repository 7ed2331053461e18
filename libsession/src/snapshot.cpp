// Consistent per-session copies for tools (dump, check). Each snapshot is taken under the
// session's mutex, so it shows one instant of that session; sessions are not frozen together.
#include "blob.hpp"
#include "clock.hpp"
#include "store.hpp"

namespace sessionbroker::detail {

std::optional<SessionSnapshot> Store::snapshot(std::uint32_t slot) {
  if (slot >= seg_.caps().max_sessions) return std::nullopt;
  auto& s = seg_.session(slot);
  if (shm::load(s.state, std::memory_order_relaxed) != static_cast<std::uint32_t>(shm::SessionState::kLive))
    return std::nullopt;
  SessionGuard guard(*this, slot);
  if (s.state != static_cast<std::uint32_t>(shm::SessionState::kLive)) return std::nullopt;
  SessionSnapshot snap{};
  snap.slot = slot;
  snap.id.assign(shm::session_id(s));
  snap.mode = static_cast<shm::LockMode>(s.lock_mode);
  snap.version = s.version;
  snap.grants = s.grants;
  snap.waits = s.waits;
  snap.ttl_ms = s.ttl_ms;
  const std::uint64_t now = mono_ns(), last = shm::load(s.last_used_ns, std::memory_order_relaxed);
  snap.idle_ms = now > last ? (now - last) / 1'000'000 : 0;
  std::uint32_t guard_steps = 0;
  for (std::uint32_t h = s.holders_head; h < seg_.record_count() && guard_steps++ < seg_.record_count(); h = seg_.record(h).next) {
    const auto& r = seg_.record(h);
    const std::uint32_t c = seg_.client_of_record(h);
    snap.holders.push_back({c, seg_.client(c).pid, static_cast<shm::LockMode>(r.mode), r.token, shm::load(r.revoke) != 0});
  }
  for (std::uint32_t w = s.queue_head; w < seg_.record_count() && guard_steps++ < seg_.record_count(); w = seg_.record(w).next) {
    const auto& r = seg_.record(w);
    const std::uint32_t c = seg_.client_of_record(w);
    snap.queue.push_back({c, seg_.client(c).pid, static_cast<shm::LockMode>(r.mode), r.ticket});
  }
  for_each_entry(seg_, s.blob, [&](std::string_view n, std::uint32_t len, ChainReader& in) {
    snap.attrs.push_back({std::string(n), len});
    return in.read(nullptr, len);
  });
  return snap;
}

Result<std::vector<std::int32_t>> Store::holder_pids(SessionRef ref) {
  if (ref.slot >= seg_.caps().max_sessions) return Status(ErrorCode::kNotFound, "no such session");
  SessionGuard guard(*this, ref.slot);
  const auto& s = seg_.session(ref.slot);
  if (s.state != static_cast<std::uint32_t>(shm::SessionState::kLive) || s.generation != ref.gen)
    return Status(ErrorCode::kNotFound, "session was destroyed or expired");
  std::vector<std::int32_t> pids;
  std::uint32_t steps = 0;
  for (std::uint32_t h = s.holders_head; h < seg_.record_count() && steps++ < seg_.record_count(); h = seg_.record(h).next)
    pids.push_back(seg_.client(seg_.client_of_record(h)).pid);
  return pids;
}

}  // namespace sessionbroker::detail
