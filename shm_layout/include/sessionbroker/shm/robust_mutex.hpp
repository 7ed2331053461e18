// A process-shared, robust pthread mutex that lives in the segment.
//
// Why not boost::interprocess::interprocess_mutex: when its holder dies it unlocks and throws,
// leaving no way to repair what the holder left half-done (boostorg/interprocess#187).
//
// Process safety: any process mapping the segment may lock it. If the holder dies, the next
// locker gets kOwnerDied: it then owns the mutex and MUST repair the structure the mutex guards
// before calling mark_consistent() (RobustGuard does this with the repair routine it is given).
// A repair that throws leaves the mutex unlocked and not consistent: from then on every lock fails
// (ENOTRECOVERABLE), which is the truth, instead of blocking for ever. Any lock failure other than
// "owner died" (ENOTRECOVERABLE, EINVAL on a garbage mutex) throws SegmentCorrupt: no caller ever
// runs a critical section without its mutex.
#pragma once

#include <cerrno>
#include <chrono>
#include <cstring>
#include <pthread.h>
#include <string>
#include <thread>
#include <type_traits>

#include "sessionbroker/shm/corrupt.hpp"

namespace sessionbroker::shm {

struct RobustMutexData {
  pthread_mutex_t native;
};
static_assert(std::is_standard_layout_v<RobustMutexData> && std::is_trivially_copyable_v<RobustMutexData>);

enum class LockOutcome { kAcquired, kOwnerDied, kFailed };

// REQUIRES: no process uses `m` yet (segment creation, or a repair that owns the whole segment).
inline int robust_mutex_init(RobustMutexData& m) {
  pthread_mutexattr_t attr;
  if (int rc = pthread_mutexattr_init(&attr)) return rc;
  int rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  if (rc == 0) rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  if (rc == 0) rc = pthread_mutex_init(&m.native, &attr);
  pthread_mutexattr_destroy(&attr);
  return rc;
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// How long a contended lock retries before it sleeps in the kernel. glibc's robust mutexes never
// spin (its adaptive kind cannot be robust), yet the sections these mutexes guard take well under
// a microsecond, while a futex sleep and wake-up costs 3-30 us on the VMs we measure on. On one
// core spinning cannot help: the holder needs that core.
inline constexpr auto kRobustSpin = std::chrono::microseconds(2);

// `error`, when given, receives the locking call's result (0, EOWNERDEAD, or the failure).
inline LockOutcome robust_mutex_lock(RobustMutexData& m, int* error = nullptr) {
  int rc = pthread_mutex_trylock(&m.native);
  if (rc == EBUSY) {
    static const bool multicore = std::thread::hardware_concurrency() > 1;
    const auto until = std::chrono::steady_clock::now() + kRobustSpin;
    for (unsigned i = 1; multicore && rc == EBUSY; ++i) {
      for (int k = 0; k < 8; ++k) cpu_relax();  // a failed trylock still takes the line from the holder
      rc = pthread_mutex_trylock(&m.native);
      if (i % 8 == 0 && std::chrono::steady_clock::now() >= until) break;
    }
    if (rc == EBUSY) rc = pthread_mutex_lock(&m.native);
  }
  if (error) *error = rc;
  if (rc == 0) return LockOutcome::kAcquired;
  if (rc == EOWNERDEAD) return LockOutcome::kOwnerDied;
  return LockOutcome::kFailed;
}

inline void robust_mutex_mark_consistent(RobustMutexData& m) { pthread_mutex_consistent(&m.native); }
inline void robust_mutex_unlock(RobustMutexData& m) { pthread_mutex_unlock(&m.native); }

[[noreturn]] inline void throw_lock_failed(int error) {
  throw SegmentCorrupt(error == ENOTRECOVERABLE
                           ? std::string("a segment mutex is unrecoverable (a repair failed): recreate the segment")
                           : "a segment mutex cannot be locked (" + std::string(std::strerror(error)) + "): the segment is corrupt");
}

// Scoped lock that runs `repair` (a callable taking no arguments) when the previous owner died,
// then marks the mutex consistent. `repair` runs with the mutex held. Throws SegmentCorrupt when
// the mutex cannot be locked; if `repair` throws, unlocks without marking consistent and rethrows.
class RobustGuard {
 public:
  template <class Repair>
  RobustGuard(RobustMutexData& m, Repair&& repair) : m_(&m) {
    int error = 0;
    const LockOutcome outcome = robust_mutex_lock(m, &error);
    if (outcome == LockOutcome::kFailed) throw_lock_failed(error);
    if (outcome == LockOutcome::kOwnerDied) {
      try {
        repair();
      } catch (...) {
        robust_mutex_unlock(m);  // not consistent: every later lock says ENOTRECOVERABLE
        throw;
      }
      robust_mutex_mark_consistent(m);
      owner_died_ = true;
    }
  }
  RobustGuard(const RobustGuard&) = delete;
  RobustGuard& operator=(const RobustGuard&) = delete;
  ~RobustGuard() { unlock(); }

  bool owner_died() const { return owner_died_; }
  void unlock() {
    if (m_) robust_mutex_unlock(*m_);
    m_ = nullptr;
  }

 private:
  RobustMutexData* m_;
  bool owner_died_ = false;
};

}  // namespace sessionbroker::shm
