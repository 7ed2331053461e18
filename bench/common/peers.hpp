// The machine's floors and the non-Redis peers, as plain lock objects usable from any process.
//
//   FutexLock   a bare futex lock in shared memory (Drepper's three-state mutex, "Futexes Are
//               Tricky"): the least a cross-process lock can cost.
//   RobustLock  a robust process-shared pthread mutex (what sessionbroker's mutexes are), with a
//               process-shared condition variable beside it for the handoff floor.
//   FlockFile   flock(2) on one file per session, as PHP's files session handler does.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include <pthread.h>

#include "sessionbroker/shm/futex.hpp"

namespace sbbench {

// Lives in shared memory; zero-initialised memory is an unlocked lock.
struct FutexLock {
  std::uint32_t word;  // 0 free, 1 locked, 2 locked with (possible) sleepers

  void lock() {
    std::uint32_t c = 0;
    if (ref().compare_exchange_strong(c, 1, std::memory_order_acquire)) return;
    if (c != 2) c = ref().exchange(2, std::memory_order_acquire);
    while (c != 0) {
      sessionbroker::shm::futex_wait(word, 2, sessionbroker::shm::Clock::time_point::max());
      c = ref().exchange(2, std::memory_order_acquire);
    }
  }
  void unlock() {
    if (ref().exchange(0, std::memory_order_release) == 2) sessionbroker::shm::futex_wake(word, 1);
  }

 private:
  std::atomic_ref<std::uint32_t> ref() { return std::atomic_ref<std::uint32_t>(word); }
};

// Lives in shared memory; call init() once before forking.
struct RobustLock {
  pthread_mutex_t mutex;
  pthread_cond_t cond;

  void init();
  // Locks; on EOWNERDEAD marks the mutex consistent (nothing to repair in a bench) and reports it.
  bool lock_reports_owner_died();
  void lock() { (void)lock_reports_owner_died(); }
  void unlock() { pthread_mutex_unlock(&mutex); }
};

class FlockFile {
 public:
  explicit FlockFile(const std::string& path);  // opens (creating) the file; exits on failure
  ~FlockFile();
  FlockFile(const FlockFile&) = delete;
  FlockFile& operator=(const FlockFile&) = delete;
  void lock();
  void unlock();
  int fd() const { return fd_; }

 private:
  int fd_;
};

// True when /proc/locks shows a process blocked in flock on the file with this inode.
bool flock_waiter_blocked(unsigned long inode);

}  // namespace sbbench
