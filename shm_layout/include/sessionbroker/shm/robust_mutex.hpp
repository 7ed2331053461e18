// A process-shared, robust pthread mutex that lives in the segment.
//
// Why not boost::interprocess::interprocess_mutex: when its holder dies it unlocks and throws,
// leaving no way to repair what the holder left half-done (boostorg/interprocess#187).
//
// Process safety: any process mapping the segment may lock it. If the holder dies, the next
// locker gets kOwnerDied: it then owns the mutex and MUST repair the structure the mutex guards
// before calling mark_consistent() (RobustGuard does this with the repair routine it is given).
// A mutex is never left inconsistent, so ENOTRECOVERABLE cannot happen through this code.
#pragma once

#include <cerrno>
#include <cstring>
#include <pthread.h>
#include <type_traits>

namespace sessionbroker::shm {

struct RobustMutexData {
  pthread_mutex_t native;
};
static_assert(std::is_standard_layout_v<RobustMutexData> && std::is_trivially_copyable_v<RobustMutexData>);

enum class LockOutcome { kAcquired, kOwnerDied, kUnrecoverable };

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

inline LockOutcome robust_mutex_lock(RobustMutexData& m) {
  int rc = pthread_mutex_lock(&m.native);
  if (rc == 0) return LockOutcome::kAcquired;
  if (rc == EOWNERDEAD) return LockOutcome::kOwnerDied;
  return LockOutcome::kUnrecoverable;
}

inline void robust_mutex_mark_consistent(RobustMutexData& m) { pthread_mutex_consistent(&m.native); }
inline void robust_mutex_unlock(RobustMutexData& m) { pthread_mutex_unlock(&m.native); }

// Scoped lock that runs `repair` (a callable taking no arguments) when the previous owner died,
// then marks the mutex consistent. `repair` runs with the mutex held.
class RobustGuard {
 public:
  template <class Repair>
  RobustGuard(RobustMutexData& m, Repair&& repair) : m_(&m) {
    LockOutcome outcome = robust_mutex_lock(m);
    if (outcome == LockOutcome::kOwnerDied) {
      repair();
      robust_mutex_mark_consistent(m);
      owner_died_ = true;
    } else if (outcome == LockOutcome::kUnrecoverable) {
      m_ = nullptr;  // cannot happen unless a foreign process broke the protocol
    }
  }
  RobustGuard(const RobustGuard&) = delete;
  RobustGuard& operator=(const RobustGuard&) = delete;
  ~RobustGuard() { unlock(); }

  bool locked() const { return m_ != nullptr; }
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
