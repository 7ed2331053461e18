// Client table and session table: attach, detach, reclaim of dead clients, create/open/destroy.
// LAYOUT.md sections "Client table", "Session table" and "Reclaim".
// Everything here runs under the registry mutex (lock order: registry -> session -> alloc), except
// a holder's expiry operations at the end (set_ttl, touch, ttl_remaining: the session mutex only).
#include <fmt/format.h>

#include "clock.hpp"
#include "liveness.hpp"
#include "stats.hpp"
#include "blob_store.hpp"
#include "fast_owner.hpp"
#include "guards.hpp"
#include "registry.hpp"

namespace sessionbroker::detail {
namespace {

using shm::ClientState;
using shm::RecordState;
using shm::SessionState;

std::uint64_t hash_id(std::string_view id) { return shm::fnv1a(id.data(), id.size()); }

Status check_session_id(std::string_view id) {
  if (id.empty()) return Status(ErrorCode::kInvalidArgument, "session id is empty");
  if (id.size() > shm::kMaxSessionIdBytes)
    return Status(ErrorCode::kTooLarge, fmt::format("session id is {} bytes; the limit is {}", id.size(), shm::kMaxSessionIdBytes));
  return {};
}

}  // namespace

Result<std::uint32_t> Registry::attach_client(pid_t pid) {
  const auto start = process_start_time(pid);
  if (!start) return Status(ErrorCode::kSystem, fmt::format("cannot read /proc/{}/stat", pid));
  auto& h = seg_.header();
  for (int attempt = 0; attempt < 2; ++attempt) {
    {
      auto g = registry_guard(seg_);
      for (std::uint32_t c = 0; c < seg_.caps().max_clients; ++c) {
        auto& cs = seg_.client(c);
        if (shm::state(cs) != ClientState::kFree) continue;
        ++cs.generation;
        cs.pid = pid;
        cs.start_time = *start;
        cs.pending_blob = shm::kNil;
        cs.attached_at_ns = real_ns();
        record_baseline(seg_.stats(c));
        cs.revoke_pending = 0;
        shm::set_state(cs, ClientState::kLive);
        ++h.client_count;
        shm::bump_and_wake(h.registry_epoch);
        return c;
      }
    }
    if (attempt == 0 && reclaim_all_dead() == 0) break;  // full: make room from dead clients once
  }
  return Status(ErrorCode::kCapacityExceeded,
                fmt::format("client table full ({} clients attached)", seg_.caps().max_clients));
}

bool Registry::detach_client(std::uint32_t client, std::uint32_t generation) {
  auto& cs = seg_.client(client);
  auto g = registry_guard(seg_);
  if (shm::state(cs) == ClientState::kFree || cs.generation != generation)
    return false;  // reclaimed already (a slot reused since is not ours to touch)
  reclaim_client_locked(client);
  return true;
}

bool Registry::reclaim_if_dead(std::uint32_t client, std::uint32_t generation) {
  auto& cs = seg_.client(client);
  auto g = registry_guard(seg_);
  const auto st = shm::state(cs);
  if (st == ClientState::kFree || cs.generation != generation) return false;  // already reclaimed or reused
  const bool owner_may_live = st == ClientState::kLive || st == ClientState::kEvicted;
  if (owner_may_live && check_liveness(cs.pid, cs.start_time) != Liveness::kDead) return false;
  reclaim_client_locked(client);
  return true;
}

bool Registry::reclaim_exited(const ClientInfo& watched) {
  auto& cs = seg_.client(watched.slot);
  auto g = registry_guard(seg_);
  if (shm::state(cs) == ClientState::kFree || cs.generation != watched.generation ||
      cs.pid != watched.pid || cs.start_time != watched.start_time)
    return false;  // reclaimed or re-attached since: the process that exited is not this slot's
  reclaim_client_locked(watched.slot);
  return true;
}

std::vector<ClientInfo> Registry::attached_clients() {
  std::vector<ClientInfo> out;
  auto g = registry_guard(seg_);
  for (std::uint32_t c = 0; c < seg_.caps().max_clients; ++c) {
    const auto& cs = seg_.client(c);
    const auto st = shm::state(cs);
    if (st == ClientState::kLive || st == ClientState::kEvicted) out.push_back({c, cs.generation, cs.pid, cs.start_time});
  }
  return out;
}

int Registry::reclaim_all_dead() {
  int n = 0;
  for (std::uint32_t c = 0; c < seg_.caps().max_clients; ++c) {
    auto& cs = seg_.client(c);
    if (shm::state(cs) == ClientState::kFree) continue;
    if (reclaim_if_dead(c, cs.generation)) ++n;
  }
  return n;
}

// Idempotent: each step checks what is left to do, so a crash half-way leaves a kDead slot that the
// next reclaim (or the registry repair) finishes.
void Registry::reclaim_client_locked(std::uint32_t client) {
  auto& cs = seg_.client(client);
  auto& h = seg_.header();
  if (shm::state(cs) == ClientState::kFree) return;
  shm::set_state(cs, ClientState::kDead);
  const std::uint32_t first = seg_.first_record_of(client);
  for (std::uint32_t rec = first; rec < first + seg_.caps().locks_per_client; ++rec) {
    auto& r = seg_.record(rec);
    const std::uint32_t slot = shm::load(r.session, std::memory_order_relaxed);
    // A kFree record may still be named by its session's fast word (the owner died between
    // publishing the word and storing kGranted): the guard below takes the word (it was never a
    // holder) and settles it, so no word names a record of this slot once the slot is reused.
    if (shm::state(r) == RecordState::kFree && !fast::names(seg_, slot, rec)) continue;
    if (slot >= seg_.caps().max_sessions) {
      shm::set_state(r, RecordState::kFree);
      continue;
    }
    SessionGuard sg(seg_, slot);
    if (r.session == slot) locks().remove_record(seg_.session(slot), rec, RecordState::kFree);
    else shm::set_state(r, RecordState::kFree);
    shm::bump_and_wake(r.wake);  // a thread of the owner still waiting on it must not sleep on
  }
  {
    auto ag = alloc_guard(seg_);
    const std::uint32_t pending = cs.pending_blob;
    cs.pending_blob = shm::kNil;  // drop the reference first: the repair must never follow a freed chain
    if (pending != shm::kNil) BlobStore(seg_).free_chain(pending);
  }
  cs.pid = 0;
  shm::set_state(cs, ClientState::kFree);
  --h.client_count;
  shm::bump_and_wake(h.registry_epoch);
}

// Returns the index word for `id`: the matching one, or (for_insert) the first reusable one.
// nullptr when not found (or, for_insert, when the index has no room).
std::uint32_t* Registry::index_find(std::string_view id, bool for_insert) {
  const std::uint32_t mask = seg_.index_size() - 1;
  std::uint32_t* reusable = nullptr;
  for (std::uint32_t i = static_cast<std::uint32_t>(hash_id(id)) & mask, probes = 0; probes <= mask;
       i = (i + 1) & mask, ++probes) {
    std::uint32_t& w = seg_.index_word(i);
    const std::uint32_t v = w;
    if (v == shm::kIndexEmpty) return for_insert ? (reusable ? reusable : &w) : nullptr;
    if (v == shm::kIndexTombstone) {
      if (!reusable) reusable = &w;
      continue;
    }
    if (v >= seg_.caps().max_sessions) continue;  // corrupt word: skip rather than trust
    const auto& s = seg_.session(v);
    if (shm::session_id(s) == id) return for_insert ? nullptr : &w;
  }
  return for_insert ? reusable : nullptr;
}

void Registry::index_rebuild() {
  auto& h = seg_.header();
  for (std::uint32_t i = 0; i < seg_.index_size(); ++i) seg_.index_word(i) = shm::kIndexEmpty;
  h.index_tombstones = 0;
  h.session_free_head = shm::kNil;
  h.session_count = 0;
  for (std::uint32_t slot = seg_.caps().max_sessions; slot-- > 0;) {
    auto& s = seg_.session(slot);
    if (shm::state(s, std::memory_order_relaxed) == SessionState::kLive && s.id_len <= shm::kMaxSessionIdBytes) {
      if (std::uint32_t* w = index_find(shm::session_id(s), true)) {
        *w = slot;
        ++h.session_count;
        continue;
      }
    }
    shm::set_state(s, SessionState::kFree, std::memory_order_relaxed);
    s.free_next = h.session_free_head;
    h.session_free_head = slot;
  }
}

Result<SessionRef> Registry::create_session(std::string_view id, std::uint64_t ttl_ms) {
  if (Status st = check_session_id(id); !st) return st;
  auto g = registry_guard(seg_);
  if (retired()) return retired_status();
  if (index_find(id, false)) return Status(ErrorCode::kAlreadyExists, fmt::format("session '{}' already exists", id));
  return create_locked(id, ttl_ms);
}

Result<SessionRef> Registry::open_or_create_session(std::string_view id, std::uint64_t ttl_ms, bool& created) {
  created = false;
  if (Status st = check_session_id(id); !st) return st;
  auto g = registry_guard(seg_);
  if (retired()) return retired_status();
  if (const std::uint32_t* w = index_find(id, false)) return SessionRef{*w, seg_.session(*w).generation};
  auto ref = create_locked(id, ttl_ms);
  created = ref.is_ok();
  return ref;
}

Result<SessionRef> Registry::create_locked(std::string_view id, std::uint64_t ttl_ms) {
  auto& h = seg_.header();
  const std::uint32_t slot = h.session_free_head;
  std::uint32_t* word = index_find(id, true);
  if (slot == shm::kNil || !word)
    return Status(ErrorCode::kCapacityExceeded, fmt::format("session table full ({} sessions)", seg_.caps().max_sessions));
  auto& s = seg_.session(slot);
  SessionGuard sg(seg_, slot);
  h.session_free_head = s.free_next;
  s.free_next = shm::kNil;
  s.id_len = static_cast<std::uint32_t>(id.size());
  std::copy(id.begin(), id.end(), s.id);
  shm::store(s.ttl_ms, ttl_ms ? ttl_ms : seg_.caps().default_ttl_ms, std::memory_order_relaxed);
  s.created_at_ns = real_ns();
  shm::store(s.version, std::uint64_t{0}, std::memory_order_relaxed);
  s.grants = 0;
  shm::set_lock_mode(s, shm::LockMode::kNone);
  s.holder_count = s.queue_len = 0;
  s.holders_head = s.queue_head = s.queue_tail = shm::kNil;
  shm::store(s.last_used_ns, mono_ns(), std::memory_order_relaxed);
  ++s.generation;
  shm::set_state(s, SessionState::kLive);
  if (*word == shm::kIndexTombstone) --h.index_tombstones;
  *word = slot;
  ++h.session_count;
  return SessionRef{slot, s.generation};
}

Result<SessionRef> Registry::open_session(std::string_view id) {
  if (Status st = check_session_id(id); !st) return st;
  auto g = registry_guard(seg_);
  if (retired()) return retired_status();
  const std::uint32_t* w = index_find(id, false);
  if (!w) return Status(ErrorCode::kNotFound, fmt::format("no session '{}'", id));
  return SessionRef{*w, seg_.session(*w).generation};
}

Status Registry::destroy_session(SessionRef ref, const RecordGrant* own) {
  auto g = registry_guard(seg_);
  auto& s = seg_.session(ref.slot);
  SessionGuard sg(seg_, ref.slot);
  if (own && !LockTable::holds(seg_, s, ref, *own)) {  // fenced: a grant broken since it was taken destroys nothing
    auto& r = seg_.record(own->record);
    if (shm::state(r) == RecordState::kBroken)
      shm::set_state(r, RecordState::kFree);
    return Status(ErrorCode::kStaleToken, fmt::format("token {} no longer holds the session lock: not destroyed", own->token));
  }
  if (shm::state(s, std::memory_order_relaxed) != SessionState::kLive || s.generation != ref.gen)
    return Status(ErrorCode::kNotFound, "session was already destroyed");
  destroy_locked(ref.slot, own);
  return {};
}

// Breaks every lock (waiters see kBroken and return kNotFound; holders' tokens go stale), frees the
// committed blob and returns the slot to the free list. REQUIRES: registry mutex + session mutex.
void Registry::destroy_locked(std::uint32_t slot, const RecordGrant* own) {
  auto& h = seg_.header();
  auto& s = seg_.session(slot);
  locks().break_all_locked(s, own);
  {
    auto ag = alloc_guard(seg_);
    const std::uint32_t blob = s.blob;
    shm::store(s.blob, shm::kNil);  // drop the reference first: the repair must never follow a freed chain
    if (blob != shm::kNil) BlobStore(seg_).free_chain(blob);
  }
  if (std::uint32_t* w = index_find(shm::session_id(s), false)) {
    *w = shm::kIndexTombstone;
    ++h.index_tombstones;
  }
  ++s.generation;
  shm::set_state(s, SessionState::kFree);
  s.free_next = h.session_free_head;
  h.session_free_head = slot;
  --h.session_count;
  if (h.index_tombstones > seg_.index_size() / 4) index_rebuild();
}

std::vector<std::string> Registry::list_sessions() {
  std::vector<std::string> ids;
  auto g = registry_guard(seg_);
  for (std::uint32_t slot = 0; slot < seg_.caps().max_sessions; ++slot) {
    const auto& s = seg_.session(slot);
    if (shm::state(s, std::memory_order_relaxed) == SessionState::kLive) ids.emplace_back(shm::session_id(s));
  }
  return ids;
}

std::optional<std::string> Registry::expire_if_idle(std::uint32_t slot, std::uint64_t now) {
  auto& s = seg_.session(slot);
  if (shm::state(s, std::memory_order_relaxed) != SessionState::kLive) return std::nullopt;
  // A use marked since the last pass (kUsedNow: releases read no clock) is dated to this pass's
  // clock, so the session's idle time starts now; a use or a date stored meanwhile wins the CAS.
  if (std::uint64_t used = shm::load(s.last_used_ns, std::memory_order_relaxed); used == shm::kUsedNow) {
    (void)shm::compare_exchange(s.last_used_ns, used, now, std::memory_order_relaxed);
    return std::nullopt;
  }
  auto idle_past_ttl = [&] {
    const std::uint64_t ttl = shm::load(s.ttl_ms, std::memory_order_relaxed);
    return ttl != 0 && now > saturating_add(shm::last_used_at(s, now), ms_to_ns(ttl));
  };
  if (!idle_past_ttl()) return std::nullopt;
  auto g = registry_guard(seg_);
  SessionGuard sg(seg_, slot);
  if (shm::state(s, std::memory_order_relaxed) != SessionState::kLive || !idle_past_ttl()) return std::nullopt;
  if (s.queue_head != shm::kNil) return std::nullopt;
  if (s.holder_count != 0) {  // idle cached lock: ask for it back; expire on a later pass
    locks().request_revoke(s);
    return std::nullopt;
  }
  std::string id(shm::session_id(s));
  destroy_locked(slot, nullptr);
  return id;
}

// LAYOUT.md "Retirement". `retired` is stored (seq_cst) before any session mutex is taken here, and
// every acquire checks it under its session's mutex after storing its record's state (seq_cst): an
// acquire whose critical section came first is broken by this pass, a later one withdraws itself.
int Registry::retire() {
  shm::store(seg_.header().retired, 1u, std::memory_order_seq_cst);
  int broken = 0;
  for (std::uint32_t slot = 0; slot < seg_.caps().max_sessions; ++slot) {
    auto& s = seg_.session(slot);
    if (shm::state(s) != shm::SessionState::kLive) continue;
    SessionGuard g(seg_, slot);
    broken += locks().break_all_locked(s, nullptr);
  }
  return broken;
}

}  // namespace sessionbroker::detail
