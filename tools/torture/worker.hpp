// One torture worker process: random lock / read / write / commit / release on the sessions,
// checking every value it reads, logging every acknowledged commit before going on.
#pragma once

#include <cstdint>
#include <string>

#include "shared.hpp"

namespace torture {

struct WorkerConfig {
  std::string segment;
  std::string log_path;  // appended to: one line per acknowledged commit
  std::uint32_t id = 0;
  int sessions = 4, attrs = 3;
  std::uint64_t seed = 0;
  bool sabotage = false;  // self-test: sometimes write from a stale read, as buggy app code would
};

// Runs until shared->stop; returns the process exit code (0 = no violation seen).
int run_worker(const WorkerConfig& cfg, Shared* shared);

}  // namespace torture
