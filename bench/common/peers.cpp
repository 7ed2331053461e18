#include "peers.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

namespace sbbench {

void RobustLock::init() {
  pthread_mutexattr_t ma;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(&mutex, &ma);
  pthread_mutexattr_destroy(&ma);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&cond, &ca);
  pthread_condattr_destroy(&ca);
}

bool RobustLock::lock_reports_owner_died() {
  const int rc = pthread_mutex_lock(&mutex);
  if (rc == EOWNERDEAD) {
    pthread_mutex_consistent(&mutex);
    return true;
  }
  return false;
}

FlockFile::FlockFile(const std::string& path) : fd_(open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600)) {
  if (fd_ < 0) {
    std::perror(path.c_str());
    std::exit(1);
  }
}

FlockFile::~FlockFile() { close(fd_); }

void FlockFile::lock() {
  while (flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
  }
}

void FlockFile::unlock() { flock(fd_, LOCK_UN); }

bool flock_waiter_blocked(unsigned long inode) {
  std::ifstream locks("/proc/locks");
  std::string line;
  const std::string tail = fmt::format(":{} ", inode);
  while (std::getline(locks, line))
    if (line.find("-> FLOCK") != std::string::npos && line.find(tail) != std::string::npos) return true;
  return false;
}

}  // namespace sbbench
