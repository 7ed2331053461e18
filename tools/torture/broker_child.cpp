#include "broker_child.hpp"

#include <csignal>
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vector>

namespace torture {

bool BrokerChild::start() {
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) return false;
  pid_ = fork();
  if (pid_ == 0) {
    const int fd = dup(ready[1]);  // the dup is inherited across exec, the original is not
    std::vector<std::string> args{path_, "--segment", segment_, "--ready-fd", std::to_string(fd)};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int devnull = ::open("/dev/null", O_WRONLY);
    dup2(devnull, STDERR_FILENO);
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

void BrokerChild::kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

}  // namespace torture
