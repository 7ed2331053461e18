// Typed access to the enum-valued words of the segment structs: the one place that turns a
// ClientState, SessionState, RecordState or LockMode into the uint32_t the segment stores, and back.
// LAYOUT.md section "Types".
//
// The state words (ClientSlot::state, SessionSlot::state, LockRecord::state) are atomic: other
// processes read them without a mutex, so every access is an atomic one with an explicit memory
// order, acquire for loads and release for stores unless the call site says otherwise (seq_cst for
// the eviction and retirement handshakes, relaxed where the caller holds the mutex that orders the
// access or only wants a hint). The modes (LockRecord::mode, SessionSlot::lock_mode) are written
// only under the session mutex and read plainly under it; tools that read lock_mode without the
// mutex use the overload with a memory order.
#pragma once

#include <atomic>
#include <cstdint>
#include <type_traits>

#include "sessionbroker/shm/atomic_word.hpp"
#include "sessionbroker/shm/client_slot.hpp"
#include "sessionbroker/shm/constants.hpp"
#include "sessionbroker/shm/lock_record.hpp"
#include "sessionbroker/shm/session_slot.hpp"

namespace sessionbroker::shm {

// The word an enum value is stored as (compile-time contracts, such as the lane's kGrantHeldWord).
template <class E>
  requires std::is_same_v<E, ClientState> || std::is_same_v<E, SessionState> || std::is_same_v<E, RecordState> ||
           std::is_same_v<E, LockMode>
constexpr std::uint32_t word(E e) {
  return static_cast<std::uint32_t>(e);
}

// ---- LockRecord ----
inline RecordState state(const LockRecord& r, std::memory_order o = std::memory_order_acquire) {
  return static_cast<RecordState>(load(r.state, o));
}
inline void set_state(LockRecord& r, RecordState st, std::memory_order o = std::memory_order_release) {
  store(r.state, word(st), o);
}
inline LockMode mode(const LockRecord& r) { return static_cast<LockMode>(r.mode); }  // REQUIRES: session mutex
inline void set_mode(LockRecord& r, LockMode m) { r.mode = word(m); }                // REQUIRES: session mutex

// ---- ClientSlot ----
inline ClientState state(const ClientSlot& c, std::memory_order o = std::memory_order_acquire) {
  return static_cast<ClientState>(load(c.state, o));
}
inline void set_state(ClientSlot& c, ClientState st, std::memory_order o = std::memory_order_release) {
  store(c.state, word(st), o);
}

// ---- SessionSlot ----
inline SessionState state(const SessionSlot& s, std::memory_order o = std::memory_order_acquire) {
  return static_cast<SessionState>(load(s.state, o));
}
inline void set_state(SessionSlot& s, SessionState st, std::memory_order o = std::memory_order_release) {
  store(s.state, word(st), o);
}
inline LockMode lock_mode(const SessionSlot& s) { return static_cast<LockMode>(s.lock_mode); }  // REQUIRES: session mutex
inline LockMode lock_mode(const SessionSlot& s, std::memory_order o) { return static_cast<LockMode>(load(s.lock_mode, o)); }
inline void set_lock_mode(SessionSlot& s, LockMode m) { s.lock_mode = word(m); }  // REQUIRES: session mutex
// A use of the session, dated later by the broker's expiry pass (SessionSlot: `last_used_ns`).
inline void mark_used(SessionSlot& s) { store(s.last_used_ns, kUsedNow, std::memory_order_relaxed); }
// The session's last use as a CLOCK_MONOTONIC time: a use not yet dated is `now`.
inline std::uint64_t last_used_at(const SessionSlot& s, std::uint64_t now) {
  const std::uint64_t t = load(s.last_used_ns, std::memory_order_relaxed);
  return t == kUsedNow ? now : t;
}

}  // namespace sessionbroker::shm
