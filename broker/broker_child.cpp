#include "broker_child.hpp"

#include <csignal>
#include <cstdio>
#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace sessionbroker::broker {

bool BrokerChild::start() {
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) return false;
  std::fflush(nullptr);
  pid_ = fork();
  if (pid_ == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    const int fd = dup(ready[1]);  // the dup survives exec, the close-on-exec original does not
    std::vector<std::string> args{binary_, "--segment", segment_, "--ready-fd", std::to_string(fd)};
    args.insert(args.end(), extra_.begin(), extra_.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    dup2(::open("/dev/null", O_WRONLY), STDERR_FILENO);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(ready[1]);
  pollfd p{ready[0], POLLIN, 0};
  char buf[8];
  const bool ok = pid_ > 0 && poll(&p, 1, 10000) == 1 && read(ready[0], buf, sizeof buf) > 0;
  close(ready[0]);
  return ok;
}

int BrokerChild::signal_and_wait(int sig) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, sig);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return status;
}

void BrokerChild::kill9() { signal_and_wait(SIGKILL); }
int BrokerChild::terminate() { return signal_and_wait(SIGTERM); }

}  // namespace sessionbroker::broker
