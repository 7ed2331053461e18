// The etcd backend as the application sees it: a Backend whose calls run in a helper process, the
// etcd agent (agent_main.cpp), which holds the gRPC client and an EtcdBackend.
//
// Why a process of its own. Debian's gRPC is built without fork support: a process forked from
// one that has used gRPC hangs in its first gRPC call. Pre-fork servers (gunicorn --preload, any
// master that touches the store before forking workers) fork all day. So gRPC never runs in the
// application: each attach starts a fresh agent with fork+exec, and a forked child that attaches
// starts its own. docs/etcd.md "Fork".
//
// What stays in the application. The grant words the fast lane reads and the notification epoch
// live in a memfd both processes map (etcd_backend.hpp SharedWords): a cached thread re-lock and
// the revoke thread's wait cost exactly what they cost in-process. Every other call is one frame
// over a Unix socket and one reply (agent_protocol.hpp): tens of microseconds beside etcd's
// millisecond commits.
//
// Lifetimes. The agent serves until its socket reaches EOF: the application detached, exited or
// was killed. On EOF it detaches from the store, revoking the process lease at once: a killed
// application's locks pass on within a round trip, broker or not. If the agent dies, the hang-up
// thread (blocked in poll for the socket's hang-up only) marks every grant lost, wakes the revoke
// thread, and every later call fails with kUnavailable. A forked child closes its copies of the
// parent's agent sockets (atfork), so the parent's death still reaches its agent as EOF.
//
// Thread safety: as Backend. Calls from many threads share the socket: writes under write_mu_.
// Replies are read by the callers themselves, one at a time (leader/followers): the caller that
// reads hands each reply to the call it is for (by id) and, once it has its own, wakes a caller
// still waiting to read on. A reply thus wakes no thread between the socket and its caller.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "backend.hpp"
#include "call_gate.hpp"
#include "etcd/agent_protocol.hpp"
#include "etcd/shared_words.hpp"

namespace sessionbroker::detail::etcd {

class AgentBackend final : public Backend {
 public:
  // Starts an agent for `address` and waits until it attached (or says why not).
  static Result<std::unique_ptr<AgentBackend>> attach(const std::string& address);
  ~AgentBackend() override;

  void close() override;
  Status detach() override;
  bool evicted() const override { return false; }
  std::uint32_t max_value_bytes() const override { return kMaxValueBytes; }
  Result<SessionHandle> create_session(std::string_view id, std::uint64_t ttl_ms) override;
  Result<SessionHandle> open_session(std::string_view id) override;
  Result<SessionHandle> open_or_create_session(std::string_view id, std::uint64_t ttl_ms, bool& created) override;
  Status destroy_session(SessionHandle s, const Grant* own) override;
  Result<std::vector<std::string>> list_sessions() override;
  Result<std::vector<std::int32_t>> holder_pids(SessionHandle s) override;
  Result<Grant> acquire(SessionHandle s, Mode mode, Clock::time_point deadline) override;
  Result<Grant> try_acquire(SessionHandle s, Mode mode) override;
  Status release(SessionHandle s, const Grant& g) override;
  bool quick_calls() const override { return false; }  // every call is a round trip to the agent
  GrantStatus grant_status(const Grant& g) override;
  GrantWords grant_words(const Grant& g) override;
  void touch(SessionHandle s) override;
  Status set_ttl(SessionHandle s, const Grant& g, std::uint64_t ttl_ms) override;
  Status touch(SessionHandle s, const Grant& g) override;
  Result<std::optional<std::uint64_t>> ttl_remaining(SessionHandle s, const Grant& g) override;
  Result<std::optional<std::string>> read(SessionHandle s, const Grant& g, std::string_view name,
                                          ReadCopySlot* copy) override;
  Result<AttrMap> read_all(SessionHandle s, const Grant& g, ReadCopySlot* copy) override;
  Status commit(SessionHandle s, const Grant& g, const ChangeSet& changes, ReadCopySlot* copy) override;
  std::uint32_t notification_epoch() override;
  void wait_notification(std::uint32_t seen, Clock::time_point deadline) override;
  void interrupt_notification_wait() override;

  pid_t agent_pid() const { return agent_; }

 private:
  struct Pending {
    std::condition_variable cv;  // its caller waits on it (with mu_): a reply wakes that caller only
    bool done = false;
    std::uint8_t code = 0;
    std::string message;
    std::string payload;
  };
  AgentBackend(int fd, SharedWords* words, pid_t agent);
  // One call: the request's payload in, the reply's payload out (or its error).
  Result<std::string> call(agent::Op op, const agent::Writer& payload, bool gated = true);
  // With mu_ held (let go while reading): reads frames until `p` is answered or the agent is gone.
  void read_until_done(std::unique_lock<std::mutex>& lk, Pending& p);
  void watch_hangup();
  void agent_gone(const std::string& why);
  bool forked() const;

  const int fd_;
  SharedWords* const words_;  // the memfd mapping
  const pid_t agent_;
  const std::uint64_t fork_epoch_;
  CallGate gate_;
  std::atomic<bool> detached_{false};
  std::mutex write_mu_;
  std::mutex mu_;
  std::map<std::uint64_t, Pending*> pending_;  // GUARDED_BY(mu_)
  std::uint64_t next_id_ = 1;                  // GUARDED_BY(mu_)
  Status gone_;                                // GUARDED_BY(mu_): why the agent is unusable, once it is
  bool reading_ = false;                       // GUARDED_BY(mu_): a caller is reading the socket
  std::thread* hangup_ = nullptr;  // owned; leaked in a forked child, where its thread does not exist
};

}  // namespace sessionbroker::detail::etcd
