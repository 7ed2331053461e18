// sessionbroker-torture --lifecycle: rounds of attach / detach / fork / pthread_exit / destroy
// (life_worker.hpp), each on a fresh segment and broker, each verified as the kill torture is
// (verify.hpp) plus: no client slot left behind by processes that are all gone (no ghost), and
// nobody left holding a lock.
#pragma once

#include <cstdint>
#include <string>

namespace torture {

struct LifecycleOptions {
  std::string segment, broker, log_dir;  // rounds use "<segment>-r<n>" and "<log_dir>/round-<n>"
  int rounds = 5, round_ms = 1000, workers = 4, threads = 3, sessions = 4, attrs = 3;
  bool sabotage = false;  // self-test: one kill-torture worker per round writes from stale reads
  std::uint64_t seed = 0;
  unsigned events = 15;  // LifeEvent bits (life_worker.hpp)
};

int run_lifecycle(const LifecycleOptions& o);

}  // namespace torture
