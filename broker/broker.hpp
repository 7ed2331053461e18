// session-broker: owns the segment, watches clients, reclaims the dead, expires idle sessions and
// enforces revoke deadlines. It is not on the lock path: clients lock and unlock without it.
//
// Thread safety: run() is the broker's only loop; one helper thread turns registry changes (a futex
// word in the segment) into an eventfd the loop polls with the pidfds and a signalfd.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "segment.hpp"
#include "sessionbroker/error.hpp"

namespace sessionbroker::broker {

struct BrokerOptions {
  std::string segment = "sessionbroker";
  detail::CreateOptions create;
  bool remove_on_exit = false;
  bool verbose = false;
};

class Broker {
 public:
  // Creates the segment, or adopts one this user created earlier (a broker restart).
  static Result<std::unique_ptr<Broker>> start(const BrokerOptions& opts);
  ~Broker();
  // Runs until SIGTERM/SIGINT (blocked in the calling thread and handled through a signalfd).
  // REQUIRES: the signals are blocked in every thread (call block_signals() first thing in main).
  Status run();
  static void block_signals();
  bool adopted() const { return adopted_; }

 private:
  class Loop;
  Broker(BrokerOptions opts, std::unique_ptr<detail::Segment> seg, bool adopted);
  BrokerOptions opts_;
  std::unique_ptr<detail::Segment> seg_;
  bool adopted_;
};

}  // namespace sessionbroker::broker
