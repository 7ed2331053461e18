// session-broker run as a child process by tests, the torture tool and the bench: started with
// --ready-fd, so start() returns once the segment is usable; killed or stopped on demand.
// One implementation of "run the broker as a child"; the demo's own launcher also shows its log.
#pragma once

#include <string>
#include <sys/types.h>
#include <vector>

namespace sessionbroker::broker {

class BrokerChild {
 public:
  // `extra`: further command-line options (for example {"--revoke-deadline", "300ms"}).
  BrokerChild(std::string binary, std::string segment, std::vector<std::string> extra = {})
      : binary_(std::move(binary)), segment_(std::move(segment)), extra_(std::move(extra)) {}
  ~BrokerChild() { kill9(); }
  BrokerChild(const BrokerChild&) = delete;
  BrokerChild& operator=(const BrokerChild&) = delete;

  // Starts it (creating or adopting the segment); true once it reported ready within 10 s.
  // Its log goes to /dev/null; it gets SIGTERM if this process dies.
  bool start();
  void kill9();
  // SIGTERM and wait: the wait status (0 for a clean stop), or -1 if it was not running.
  int terminate();
  bool running() const { return pid_ > 0; }

 private:
  int signal_and_wait(int sig);
  std::string binary_, segment_;
  std::vector<std::string> extra_;
  pid_t pid_ = -1;
};

}  // namespace sessionbroker::broker
