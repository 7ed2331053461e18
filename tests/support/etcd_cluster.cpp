#include "etcd_cluster.hpp"

#include <cstdio>
#include <cstdlib>
#include <sstream>

#include <sys/wait.h>
#include <unistd.h>

#ifndef SBETCD_CLUSTER_SCRIPT
#error "SBETCD_CLUSTER_SCRIPT must name scripts/etcd-cluster.sh"
#endif

namespace sbtest {

bool EtcdCluster::run(const std::string& args, std::string* out) const {
  const std::string cmd = "SBETCD_OWNER_PID=" + std::to_string(getpid()) + " " SBETCD_CLUSTER_SCRIPT " " + args;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return false;
  std::string text;
  char buf[512];
  while (std::size_t n = fread(buf, 1, sizeof buf, p)) text.append(buf, n);
  const int status = pclose(p);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  if (out) *out = text;
  return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

std::unique_ptr<EtcdCluster> EtcdCluster::start(std::string* error) {
  char tmpl[] = "/tmp/sbetcd-fixture-XXXXXX";
  if (!mkdtemp(tmpl)) {
    *error = "mkdtemp failed";
    return nullptr;
  }
  std::unique_ptr<EtcdCluster> c(new EtcdCluster(tmpl));
  std::string out;
  if (!c->run("start " + c->dir_ + " 2>&1", &out)) {
    *error = "scripts/etcd-cluster.sh start failed: " + out;
    return nullptr;  // the destructor stops what did start
  }
  std::istringstream lines(out);
  std::string last, line;
  while (std::getline(lines, line)) last = line;  // the endpoints are the last line
  std::istringstream eps(last);
  std::string ep;
  while (std::getline(eps, ep, ',')) c->endpoints_.push_back(ep);
  if (c->endpoints_.size() != 3) {
    *error = "unexpected endpoints from etcd-cluster.sh: " + out;
    return nullptr;
  }
  return c;
}

EtcdCluster::~EtcdCluster() { stop(); }

void EtcdCluster::stop() {
  if (stopped_) return;
  stopped_ = true;
  run("stop " + dir_);
}

std::vector<std::string> EtcdCluster::endpoints() const { return endpoints_; }

std::string EtcdCluster::address(const std::string& prefix) const {
  return "etcd://" + endpoints_[0] + "," + endpoints_[1] + "," + endpoints_[2] + "/" + prefix;
}

int EtcdCluster::leader_index() const {
  std::string out;
  if (!run("leader " + dir_, &out)) return -1;
  return std::atoi(out.c_str());
}

pid_t EtcdCluster::pid(int member) const {
  std::string out;
  if (!run("pid " + dir_ + " " + std::to_string(member), &out)) return -1;
  return static_cast<pid_t>(std::atol(out.c_str()));
}

bool EtcdCluster::kill(int member) { return run("kill " + dir_ + " " + std::to_string(member)); }
bool EtcdCluster::restart(int member) { return run("restart " + dir_ + " " + std::to_string(member)); }
bool EtcdCluster::pause(int member) { return run("pause " + dir_ + " " + std::to_string(member)); }
bool EtcdCluster::resume(int member) { return run("resume " + dir_ + " " + std::to_string(member)); }

}  // namespace sbtest
