// sessionbroker-etcd-agent: the process that talks to etcd for one attached application process
// (agent_backend.hpp says why it is a process of its own). Started by the library, never by hand:
//   sessionbroker-etcd-agent ADDRESS PID with fd 3 the socket to the application and fd 4 the memfd
//                                        of the shared words (etcd_backend.hpp SharedWords)
// It attaches an EtcdBackend, says how that went (frame 0), then serves one request per frame,
// each on a thread of its own while it runs (an acquire may wait; others must not wait behind
// it): the thread that read the frame, while another takes over reading (Server), until EOF. At EOF
// (the application detached, exited or was killed) it detaches: the process lease is revoked and
// every lock of the application passes on at once.
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "etcd/agent_protocol.hpp"
#include "etcd/etcd_backend.hpp"

using namespace sessionbroker;
using namespace sessionbroker::detail;
using namespace sessionbroker::detail::etcd;
using agent::Op;

namespace {

constexpr int kSocket = 3;
constexpr int kWords = 4;

std::mutex g_write_mu;

void reply(std::uint64_t id, const Status& st, const agent::Writer& payload = {}) {
  agent::Writer w;
  w.u64(id);
  w.u8(static_cast<std::uint8_t>(st.code()));
  w.str(st.message());
  std::string frame = w.frame();
  const std::uint32_t len = static_cast<std::uint32_t>(frame.size() - 4 + payload.bytes().size());
  std::memcpy(frame.data(), &len, 4);
  frame += payload.bytes();
  std::lock_guard lk(g_write_mu);
  (void)agent::write_all(kSocket, frame);  // the application may be gone: nothing to tell then
}

SessionHandle handle(agent::Reader& in) { return {in.u64(), in.u64()}; }
Grant grant(agent::Reader& in) { return {in.u64(), in.u64()}; }
void put(agent::Writer& w, SessionHandle h) {
  w.u64(h.key);
  w.u64(h.generation);
}

// One request: decode, call the backend, reply.
void serve(EtcdBackend& b, std::uint64_t id, Op op, agent::Reader in) {
  agent::Writer out;
  Status st;
  auto bad = [&] { return Status(ErrorCode::kInvalidArgument, "etcd agent: malformed request"); };
  switch (op) {
    case Op::kClose:
      b.close();
      break;
    case Op::kDetach:
      st = b.detach();
      break;
    case Op::kCreate: case Op::kOpen: case Op::kOpenOrCreate: {
      const std::string sid = in.str();
      const std::uint64_t ttl = op == Op::kOpen ? 0 : in.u64();
      if (in.failed()) { st = bad(); break; }
      bool created = false;
      auto h = op == Op::kCreate ? b.create_session(sid, ttl)
               : op == Op::kOpen ? b.open_session(sid)
                                 : b.open_or_create_session(sid, ttl, created);
      if (!h) { st = h.status(); break; }
      put(out, *h);
      if (op == Op::kOpenOrCreate) out.u8(created);
      break;
    }
    case Op::kDestroy: {
      const SessionHandle h = handle(in);
      const bool has_own = in.u8() != 0;
      const Grant g = grant(in);
      st = in.failed() ? bad() : b.destroy_session(h, has_own ? &g : nullptr);
      break;
    }
    case Op::kList: {
      auto ids = b.list_sessions();
      if (!ids) { st = ids.status(); break; }
      out.u32(static_cast<std::uint32_t>(ids->size()));
      for (const auto& i : *ids) out.str(i);
      break;
    }
    case Op::kHolders: {
      const SessionHandle h = handle(in);
      if (in.failed()) { st = bad(); break; }
      auto pids = b.holder_pids(h);
      if (!pids) { st = pids.status(); break; }
      out.u32(static_cast<std::uint32_t>(pids->size()));
      for (auto p : *pids) out.u32(static_cast<std::uint32_t>(p));
      break;
    }
    case Op::kAcquire: case Op::kTryAcquire: {
      const SessionHandle h = handle(in);
      const Mode m = in.u8() != 0 ? Mode::kExclusive : Mode::kShared;
      const Clock::time_point deadline{Clock::duration{op == Op::kAcquire ? static_cast<Clock::rep>(in.u64()) : 0}};
      if (in.failed()) { st = bad(); break; }
      auto g = op == Op::kAcquire ? b.acquire(h, m, deadline) : b.try_acquire(h, m);
      if (!g) { st = g.status(); break; }
      out.u64(g->token);
      out.u64(g->id);
      break;
    }
    case Op::kRelease: {
      const SessionHandle h = handle(in);
      const Grant g = grant(in);
      st = in.failed() ? bad() : b.release(h, g);
      break;
    }
    case Op::kTouch: {
      const SessionHandle h = handle(in);
      if (!in.failed()) b.touch(h);
      break;
    }
    case Op::kSetTtl: {
      const SessionHandle h = handle(in);
      const Grant g = grant(in);
      const std::uint64_t ttl = in.u64();
      st = in.failed() ? bad() : b.set_ttl(h, g, ttl);
      break;
    }
    case Op::kTouchFenced: {
      const SessionHandle h = handle(in);
      const Grant g = grant(in);
      st = in.failed() ? bad() : b.touch(h, g);
      break;
    }
    case Op::kTtlRemaining: {
      const SessionHandle h = handle(in);
      const Grant g = grant(in);
      if (in.failed()) { st = bad(); break; }
      auto left = b.ttl_remaining(h, g);
      if (!left) { st = left.status(); break; }
      out.u8(left->has_value());
      out.u64(left->value_or(0));
      break;
    }
    case Op::kRead: {
      const SessionHandle h = handle(in);
      const Grant g = grant(in);
      const std::string name = in.str();
      if (in.failed()) { st = bad(); break; }
      auto v = b.read(h, g, name, nullptr);  // EtcdBackend keeps no copy
      if (!v) { st = v.status(); break; }
      out.u8(v->has_value());
      out.str(v->value_or(""));
      break;
    }
    case Op::kReadAll: {
      const SessionHandle h = handle(in);
      const Grant g = grant(in);
      if (in.failed()) { st = bad(); break; }
      auto all = b.read_all(h, g, nullptr);
      if (!all) { st = all.status(); break; }
      out.u32(static_cast<std::uint32_t>(all->size()));
      for (const auto& [k, v] : *all) {
        out.str(k);
        out.str(v);
      }
      break;
    }
    case Op::kCommit: {
      const SessionHandle h = handle(in);
      const Grant g = grant(in);
      ChangeSet changes;
      for (std::uint32_t n = in.u32(); n > 0 && !in.failed(); --n) {
        std::string name = in.str();
        const bool has = in.u8() != 0;
        std::string value = in.str();
        changes.insert_or_assign(std::move(name), has ? std::optional<std::string>(std::move(value)) : std::nullopt);
      }
      st = in.failed() ? bad() : b.commit(h, g, changes, nullptr);
      break;
    }
    default:
      st = bad();
  }
  reply(id, st, st ? out : agent::Writer{});
}

// The threads that read and serve frames (leader/followers). One thread, the leader, reads the
// socket; when a frame comes it hands the reading on (waking an idle thread, or starting one when
// every thread is busy: an acquire may wait for minutes and nothing may queue behind it) and serves
// the frame itself, so a call costs no wake-up between reading its frame and running it; the
// hand-over runs beside the call. Threads stay for later frames.
class Server {
 public:
  explicit Server(EtcdBackend& b) : b_(b) {}
  // Serves until EOF (or a malformed frame) on the socket.
  void run_until_eof() {
    std::unique_lock lk(mu_);
    start_thread();
    eof_cv_.wait(lk, [&] { return eof_; });
  }
  // True once no frame is being served (false if `limit` passed first).
  bool drain(std::chrono::seconds limit) {
    std::unique_lock lk(mu_);
    return done_.wait_for(lk, limit, [&] { return running_ == 0; });
  }

 private:
  void start_thread() {  // with mu_ held
    std::thread([this] {
      pthread_setname_np(pthread_self(), "sb-agent-serve");
      loop();
    }).detach();
  }

  void loop() {
    std::unique_lock lk(mu_);
    for (;;) {
      ++idle_;
      turn_.wait(lk, [&] { return !reading_ || eof_; });
      --idle_;
      if (eof_) return;
      reading_ = true;
      lk.unlock();
      std::string body;
      bool ok = agent::read_frame(kSocket, body);
      agent::Reader in(body);
      const std::uint64_t id = ok ? in.u64() : 0;
      const auto op = static_cast<Op>(ok ? in.u8() : 0);
      ok = ok && !in.failed();
      lk.lock();
      reading_ = false;
      if (!ok) {
        eof_ = true;
        turn_.notify_all();
        eof_cv_.notify_all();
        return;
      }
      ++running_;
      if (idle_ > 0) turn_.notify_one();
      else start_thread();
      lk.unlock();
      serve(b_, id, op, agent::Reader(std::string_view(body).substr(9)));
      lk.lock();
      if (--running_ == 0) done_.notify_all();
    }
  }

  EtcdBackend& b_;
  std::mutex mu_;
  std::condition_variable turn_, eof_cv_, done_;
  bool reading_ = false;  // GUARDED_BY(mu_): a thread is reading the socket (the leader)
  bool eof_ = false;      // GUARDED_BY(mu_)
  int idle_ = 0;          // GUARDED_BY(mu_): threads waiting for their turn to read
  int running_ = 0;       // GUARDED_BY(mu_): frames being served
};

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  // gRPC's default engine (epoll1) lets one thread at a time poll every connection and wakes the
  // thread a completion is for: a stream reader asleep in Read() became the poller for the other
  // calls and woke for each of them. "poll" has each waiting thread poll its own call's
  // connection; with the streams on connections of their own (etcd_client.hpp) an idle stream's
  // reader sleeps. A user's setting wins.
  setenv("GRPC_POLL_STRATEGY", "poll", 0);
  if (argc != 3) {
    std::fprintf(stderr, "sessionbroker-etcd-agent: started by libsessionbroker, not by hand\n");
    return 2;
  }
  void* map = mmap(nullptr, sizeof(SharedWords), PROT_READ | PROT_WRITE, MAP_SHARED, kWords, 0);
  if (map == MAP_FAILED) {
    reply(0, Status(ErrorCode::kSystem, "etcd agent: cannot map the shared words"));
    return 1;
  }
  ::close(kWords);
  // The locks are the application's: it is the process brokers watch and tools name.
  auto b = EtcdBackend::attach(argv[1], static_cast<SharedWords*>(map), static_cast<pid_t>(std::atol(argv[2])));
  reply(0, b ? Status{} : b.status());
  if (!b) return 1;

  // Never destroyed: detached threads may still be waiting on it when the process exits.
  auto* server = new Server(**b);
  server->run_until_eof();
  // EOF: the application is gone or detached. Detaching calls back whatever still waits. A call
  // stuck on an unreachable cluster must not keep the agent alive: once the application is gone
  // nobody waits for its answer (an agent was found alive an hour after its application died while
  // the cluster was down), so leave after a bound, without running destructors under live threads.
  (void)(*b)->detach();
  const bool drained = server->drain(std::chrono::seconds(10));
  std::fflush(nullptr);
  _exit(drained ? 0 : 3);
}
