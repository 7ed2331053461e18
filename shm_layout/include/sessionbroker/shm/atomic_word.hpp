// Atomic access to plain integer words that live in the shared segment.
//
// Segment structs stay trivially copyable and standard-layout (see LAYOUT.md "Types"), so their
// words are plain integers; every access that another process may race with goes through these
// helpers, which wrap std::atomic_ref with an explicit memory order at the call site.
#pragma once

#include <atomic>
#include <cstdint>

namespace sessionbroker::shm {

static_assert(std::atomic_ref<std::uint32_t>::is_always_lock_free,
              "segment words must be lock-free: a lock inside atomic_ref would not be process-shared");
static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free,
              "segment words must be lock-free: a lock inside atomic_ref would not be process-shared");

template <class T>
inline T load(const T& word, std::memory_order order = std::memory_order_acquire) {
  return std::atomic_ref<T>(const_cast<T&>(word)).load(order);
}

template <class T>
inline void store(T& word, T value, std::memory_order order = std::memory_order_release) {
  std::atomic_ref<T>(word).store(value, order);
}

template <class T>
inline T fetch_add(T& word, T delta, std::memory_order order = std::memory_order_acq_rel) {
  return std::atomic_ref<T>(word).fetch_add(delta, order);
}

template <class T>
inline T fetch_or(T& word, T bits, std::memory_order order = std::memory_order_acq_rel) {
  return std::atomic_ref<T>(word).fetch_or(bits, order);
}

template <class T>
inline T fetch_and(T& word, T bits, std::memory_order order = std::memory_order_acq_rel) {
  return std::atomic_ref<T>(word).fetch_and(bits, order);
}

template <class T>
inline bool compare_exchange(T& word, T& expected, T desired,
                             std::memory_order order = std::memory_order_acq_rel) {
  return std::atomic_ref<T>(word).compare_exchange_strong(expected, desired, order);
}

}  // namespace sessionbroker::shm
