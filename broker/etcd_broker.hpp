// session-broker --store etcd://...: the local half of the etcd backend's liveness (docs/etcd.md
// "Liveness"). It watches the client keys of its host id (PREFIX/c/<host>/), opens a pidfd for
// each registered process, and revokes the process lease the moment that process exits: its
// queue keys vanish and the next waiter is granted in about a round trip, instead of after the
// lease TTL. Several brokers may serve one store (one per host; tests run several on one machine
// with distinct --host-id values). The cluster does the rest (the store itself, idle expiry by
// session leases), so the broker holds no state that a restart loses: at start it reads the
// host's client keys afresh.
//
// Thread safety: run() is the only loop. Watch callbacks (the Watcher's thread) only queue the
// changes and poke an eventfd the loop polls with the pidfds and a signalfd.
#pragma once

#include <memory>
#include <string>

#include "sessionbroker/error.hpp"

namespace sessionbroker::broker {

struct EtcdBrokerOptions {
  std::string store;    // etcd://HOST:PORT[,...]/PREFIX
  std::string host_id;  // empty: the hostname (as the clients' SESSIONBROKER_HOST_ID default)
  bool verbose = false;
};

class EtcdBroker {
 public:
  // Connects and reads the host's clients (revoking the leases of those already dead).
  static Result<std::unique_ptr<EtcdBroker>> start(const EtcdBrokerOptions& opts);
  ~EtcdBroker();
  // Runs until SIGTERM/SIGINT. REQUIRES: the signals are blocked (Broker::block_signals()).
  Status run();

 private:
  struct State;
  explicit EtcdBroker(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace sessionbroker::broker
