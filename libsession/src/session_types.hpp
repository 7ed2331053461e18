// The library's own names for what every backend deals in (backend.hpp): limits, attribute
// changes, grant handles and the two words of a grant the fast lane reads. Nothing here depends on
// a backend; the shared-memory store (lock_table.hpp and the other roles) uses the same types.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace sessionbroker::detail {

using Clock = std::chrono::steady_clock;  // CLOCK_MONOTONIC on Linux, the futex bitset clock

// Limits every backend enforces (the segment layout has the same numbers: shm_backend.cpp checks).
inline constexpr std::uint32_t kMaxSessionIdBytes = 128;
inline constexpr std::uint32_t kMaxAttrNameBytes = 64;

// Attribute changes of one commit: a value to set, or nullopt to erase.
using ChangeSet = std::map<std::string, std::optional<std::string>, std::less<>>;
using AttrMap = std::map<std::string, std::string, std::less<>>;

// A session as the backend names it. Opaque to the library: it only passes it back, and compares
// `key` to find its own copy of a session.
struct SessionHandle {
  std::uint64_t key = ~std::uint64_t{0};
  std::uint64_t generation = 0;
};

// A process-level lock this process holds: its fencing token and the backend's name for it.
struct Grant {
  std::uint64_t token = 0;
  std::uint64_t id = ~std::uint64_t{0};
};

// What the store says of a grant the process holds.
enum class GrantStatus { kHeld, kRevokeRequested, kLost };

// The two words of a grant that the fast lane reads (backend.hpp, "What a backend promises").
inline constexpr std::uint32_t kGrantHeldWord = 2;
struct GrantWords {
  const std::uint32_t* state = nullptr;
  const std::uint32_t* revoke = nullptr;
};

// Two acquire loads of words only the store and the owner write; no call, no mutex.
inline GrantStatus grant_status_of(const GrantWords& w) {
  if (std::atomic_ref<const std::uint32_t>(*w.state).load(std::memory_order_acquire) != kGrantHeldWord)
    return GrantStatus::kLost;
  return std::atomic_ref<const std::uint32_t>(*w.revoke).load(std::memory_order_acquire) != 0
             ? GrantStatus::kRevokeRequested
             : GrantStatus::kHeld;
}

}  // namespace sessionbroker::detail
