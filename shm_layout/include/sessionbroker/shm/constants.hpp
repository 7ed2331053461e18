// Fixed limits and state codes of segment layout version 6. See shm_layout/LAYOUT.md.
// Changing any value here changes the layout: bump kLayoutVersion.
#pragma once

#include <cstdint>

namespace sessionbroker::shm {

inline constexpr std::uint64_t kMagic = 0x314D485342524253ull;  // "SBRBSHM1" little-endian
inline constexpr std::uint32_t kLayoutVersion = 6;  // 6: a record's `wake` marks its owner awake (kWakeAwake)

inline constexpr std::uint32_t kNil = 0xFFFFFFFFu;  // "no slot / no record / no block"

inline constexpr std::uint32_t kMaxSessionIdBytes = 128;
inline constexpr std::uint32_t kMaxAttrNameBytes = 64;
inline constexpr std::uint32_t kBlockBytes = 256;  // one attribute-store block, header included

// Hard ceilings on capacities, so a corrupt header cannot make us compute absurd offsets.
inline constexpr std::uint32_t kMaxClients = 4096;
inline constexpr std::uint32_t kMaxLocksPerClient = 65536;
inline constexpr std::uint32_t kMaxSessions = 1u << 24;
inline constexpr std::uint32_t kMaxBlocks = 1u << 26;  // 16 GiB of attribute memory

enum class ClientState : std::uint32_t {
  kFree = 0,  // slot unused; records of the slot are all kFree
  kLive = 1,  // attached process, identified by pid + start time
  kDead = 2,  // owner found dead; reclaim in progress or pending (idempotent, any process may finish it)
  kEvicted = 3,  // an administrator evicted the live owner: its locks are broken, it may take no more;
                 // freed when the owner detaches or dies
};

enum class LockMode : std::uint32_t { kNone = 0, kShared = 1, kExclusive = 2 };

enum class RecordState : std::uint32_t {
  kFree = 0,     // not linked anywhere; the owning client may reuse it
  kWaiting = 1,  // linked in its session's queue
  kGranted = 2,  // linked in its session's holder list; `token` is the current fencing token
  kBroken = 3,   // taken away by force (revoke deadline, break-lock, expiry); linked nowhere;
                 // only the owning client moves it back to kFree
  kReleasing = 4,  // its owner is giving a fast-path grant back (LAYOUT.md "Fast path"): no longer
                   // a holder; the owner takes it off the holder list if a mutex holder put it there
};

enum class SessionState : std::uint32_t { kFree = 0, kLive = 1 };

}  // namespace sessionbroker::shm
