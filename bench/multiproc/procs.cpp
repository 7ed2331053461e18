#include "procs.hpp"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <thread>

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace sbbench {

SampleBuffer* SampleBuffer::create() { return shared_anon<SampleBuffer>(); }

pid_t spawn(const std::function<int()>& fn) {
  std::fflush(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    std::perror("fork");
    std::exit(1);
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // a bench killed by Ctrl-C takes its participants along
    if (getppid() != parent) _exit(1);
    _exit(fn());
  }
  return pid;
}

bool wait_all(const std::vector<pid_t>& pids, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool ok = true;
  for (pid_t pid : pids) {
    int status = 0;
    for (;;) {
      const pid_t r = waitpid(pid, &status, WNOHANG);
      if (r == pid) break;
      if (r < 0) {
        status = -1;
        break;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        std::fprintf(stderr, "participant %d did not finish in time: killed\n", static_cast<int>(pid));
        ok = false;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ok = ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  return ok;
}

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout, std::chrono::microseconds every) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(every);
  }
  return true;
}

bool BrokerProcess::start(const std::vector<std::string>& extra) {
  int ready[2];
  if (pipe(ready) != 0) return false;
  std::fflush(nullptr);
  pid_ = fork();
  if (pid_ == 0) {
    close(ready[0]);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    std::vector<std::string> args{SESSION_BROKER_BIN, "--segment", segment_, "--ready-fd", std::to_string(ready[1]),
                                  "--remove-on-exit"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, STDERR_FILENO);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(ready[1]);
  pollfd p{ready[0], POLLIN, 0};
  char buf[8] = {};
  const bool ok = poll(&p, 1, 10000) == 1 && read(ready[0], buf, sizeof buf) > 0;
  close(ready[0]);
  if (!ok) std::fprintf(stderr, "session-broker (%s) did not report ready\n", SESSION_BROKER_BIN);
  return ok;
}

void BrokerProcess::stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

}  // namespace sbbench
