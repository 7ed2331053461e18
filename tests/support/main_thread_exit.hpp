// Ends the calling thread with pthread_exit() from inside a forked test child, so that the child's
// main thread can exit while its other threads go on (the thread group leader then shows `Z` in
// /proc/PID/stat although the process is alive).
//
// pthread_exit() unwinds the calling thread's stack, and a catch (...) on the way (Child::spawn's,
// GoogleTest's) would swallow the forced unwind, which glibc answers with abort(). So the call runs
// on a stack of its own (makecontext): the unwind finds no frame of ours and ends in glibc's own
// thread-exit path; the frames of the original stack, and the objects in them (the Channel), stay
// as they are for the threads that go on.
#pragma once

#include <pthread.h>
#include <sys/types.h>
#include <ucontext.h>

#include <fstream>
#include <string>

namespace sbtest {

[[noreturn]] inline void exit_this_thread_keeping_stack() {
  static ucontext_t on_own_stack, caller;
  alignas(16) static char stack[256 * 1024];
  getcontext(&on_own_stack);
  on_own_stack.uc_stack.ss_sp = stack;
  on_own_stack.uc_stack.ss_size = sizeof stack;
  on_own_stack.uc_link = &caller;
  makecontext(&on_own_stack, [] { pthread_exit(nullptr); }, 0);
  swapcontext(&caller, &on_own_stack);
  __builtin_unreachable();
}

// The state letter of /proc/PID/stat ('R', 'S', 'Z', ...), or '?' when it cannot be read.
inline char proc_state(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return '?';
  const auto p = line.rfind(')');
  return p != std::string::npos && p + 2 < line.size() ? line[p + 2] : '?';
}

}  // namespace sbtest
