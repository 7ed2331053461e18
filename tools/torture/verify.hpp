// End-of-run verification of a torture run: the final state against the commit logs, then the
// segment's invariants (LAYOUT.md I1-I12), stuck waiters and leaked memory.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace torture {

struct VerifyResult {
  std::uint64_t commits_logged = 0, attrs_checked = 0;
  std::uint64_t lost = 0, torn = 0, order_violations = 0, duplicate_tokens = 0;
  std::uint64_t invariant_violations = 0, stuck = 0, leaked_blocks = 0;
  std::vector<std::string> messages;
  bool ok() const {
    return lost + torn + order_violations + duplicate_tokens + invariant_violations + stuck + leaked_blocks == 0;
  }
};

// REQUIRES: every worker has stopped. Reads the logs in `log_dir`, the segment's final state
// (through a client of its own), runs the invariant checker, destroys every session and checks
// that all attribute memory is free again.
VerifyResult verify_run(const std::string& segment, const std::string& log_dir, int sessions, int attrs);

}  // namespace torture
