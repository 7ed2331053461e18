// A real 3-member etcd cluster on loopback for one test: scripts/etcd-cluster.sh (the one
// implementation the tests, CI and the README share) driven from C++. The cluster lives in a
// fresh temporary directory, its data on tmpfs; the destructor kills every member and removes
// it all. Should the test process die first, the script's watchdog does the same.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <sys/types.h>

namespace sbtest {

class EtcdCluster {
 public:
  // Starts the cluster and waits until it is healthy with a leader; nullptr (and *error) on failure.
  static std::unique_ptr<EtcdCluster> start(std::string* error);
  ~EtcdCluster();
  EtcdCluster(const EtcdCluster&) = delete;
  EtcdCluster& operator=(const EtcdCluster&) = delete;

  std::vector<std::string> endpoints() const;  // "127.0.0.1:PORT", member i at index i
  std::string address(const std::string& prefix) const;  // etcd://e0,e1,e2/prefix
  int leader_index() const;                     // waits for an election in progress; -1 if none
  pid_t pid(int member) const;
  bool kill(int member);                        // SIGKILL; returns once it is gone
  bool restart(int member);                     // on its data; returns once the cluster is healthy
  bool pause(int member);                       // SIGSTOP: alive, silent (a partition, cheaply)
  bool resume(int member);                      // SIGCONT
  void stop();                                  // kills everything and removes the data

 private:
  explicit EtcdCluster(std::string dir) : dir_(std::move(dir)) {}
  // Runs the script with these arguments; its stdout (trimmed), and whether it exited 0.
  bool run(const std::string& args, std::string* out = nullptr) const;

  std::string dir_;
  std::vector<std::string> endpoints_;
  bool stopped_ = false;
};

}  // namespace sbtest
