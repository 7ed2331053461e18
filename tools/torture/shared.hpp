// State shared by the torture parent and its workers through an anonymous shared mapping made
// before fork: the stop flag, counters, and per attribute the newest acknowledged commit, which
// every later reader must see (or something newer): the online lost-update check.
#pragma once

#include <atomic>
#include <cstdint>
#include <new>

#include <sys/mman.h>

namespace torture {

inline constexpr int kMaxSessions = 16, kMaxAttrs = 4;

struct Acked {
  std::atomic<std::uint64_t> token{0}, seq{0};  // written together under the session lock
};

struct Shared {
  std::atomic<std::uint32_t> stop{0};
  std::atomic<std::uint64_t> commits{0}, reads{0}, lock_timeouts{0};
  std::atomic<std::uint64_t> torn{0}, lost{0}, errors{0};
  Acked acked[kMaxSessions][kMaxAttrs];
};

// A value-initialised T in an anonymous shared mapping, inherited by every process forked after
// (never unmapped: it lives as long as the run). nullptr when mmap fails.
template <class T>
T* map_shared_object() {
  void* p = mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : new (p) T{};
}

}  // namespace torture
