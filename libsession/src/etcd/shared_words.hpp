// What the application side of the etcd backend (agent_backend.hpp) shares with the agent process
// that runs the protocol (etcd_backend.hpp), without gRPC: the grant words both map, and the
// limits the application checks before it sends anything. The installable libsessionbroker is
// built with this and the agent protocol only; gRPC lives in sessionbroker-etcd-agent.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend.hpp"

namespace sessionbroker::detail::etcd {

inline constexpr std::uint32_t kMaxValueBytes = 512 * 1024;
inline constexpr std::size_t kMaxSessionBytes = 1024 * 1024;  // etcd refuses requests over 1.5 MiB
inline constexpr std::size_t kGrantSlots = 4096;               // grants and requests in flight per process

// The words the fast lane and the revoke thread read without a call: a grant's state and revoke
// words per slot, and the notification epoch. In the application's memory when the backend runs
// there; in a memfd mapped by both when it runs in the agent (agent_backend.hpp), so that the
// application reads them as if they were its own.
struct GrantSlot {
  std::uint32_t state = 0;   // kGrantHeldWord while granted (GrantWords::state)
  std::uint32_t revoke = 0;  // GrantWords::revoke
};
struct SharedWords {
  std::uint32_t epoch = 0;  // futex word, bumped on revoke requests and losses
  std::uint32_t reserved = 0;
  GrantSlot slots[kGrantSlots];
};

// A grant's words in `w` (nulls for an id no grant has), and what they say.
inline GrantWords words_of(SharedWords& w, const Grant& g) {
  if (g.id >= kGrantSlots) return {};
  return {&w.slots[g.id].state, &w.slots[g.id].revoke};
}
inline GrantStatus status_of(SharedWords& w, const Grant& g) {
  const GrantWords words = words_of(w, g);
  return words.state ? grant_status_of(words) : GrantStatus::kLost;
}

}  // namespace sessionbroker::detail::etcd
