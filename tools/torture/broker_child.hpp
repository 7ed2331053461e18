// A session-broker child the torture run can SIGKILL and restart on the same segment.
#pragma once

#include <string>
#include <sys/types.h>

namespace torture {

class BrokerChild {
 public:
  BrokerChild(std::string path, std::string segment) : path_(std::move(path)), segment_(std::move(segment)) {}
  ~BrokerChild() { kill9(); }
  // Starts the broker (creating or adopting the segment); true once it reported ready.
  bool start();
  void kill9();
  bool running() const { return pid_ > 0; }

 private:
  std::string path_, segment_;
  pid_t pid_ = -1;
};

}  // namespace torture
