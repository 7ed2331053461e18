#include "etcd/agent_backend.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include <fmt/format.h>

#include "fork_guard.hpp"
#include "sessionbroker/shm/futex.hpp"

// Where the agent is: SESSIONBROKER_ETCD_AGENT_PATH (the build tree's) for the in-tree library; for
// the installed one, SESSIONBROKER_ETCD_AGENT_FROM_LIBDIR, relative to the directory of the
// libsessionbroker.so this code is in (the install stays relocatable), else the configured path.
#ifndef SESSIONBROKER_ETCD_AGENT_PATH
#define SESSIONBROKER_ETCD_AGENT_PATH "sessionbroker-etcd-agent"
#endif

namespace sessionbroker::detail::etcd {
namespace {

using agent::Op;
using agent::Reader;

std::string agent_path() {
  const char* env = std::getenv("SESSIONBROKER_ETCD_AGENT");
  if (env != nullptr && *env != '\0') return env;
#ifdef SESSIONBROKER_ETCD_AGENT_FROM_LIBDIR
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&agent_path), &info) != 0 && info.dli_fname != nullptr) {
    std::string lib = info.dli_fname;
    const auto slash = lib.rfind('/');
    if (slash != std::string::npos) {
      std::string candidate = lib.substr(0, slash + 1) + SESSIONBROKER_ETCD_AGENT_FROM_LIBDIR;
      if (access(candidate.c_str(), X_OK) == 0) return candidate;
    }
  }
#endif
  return SESSIONBROKER_ETCD_AGENT_PATH;
}
using agent::Writer;

// The agent sockets of this process. A forked child closes its copies at once (atfork), so that
// the parent's agent sees EOF when the parent goes, whatever its children do.
struct FdSlot {
  std::atomic<int> fd{-1};
};
FdSlot g_agent_fds[256];
void close_inherited_agent_fds() {
  for (auto& f : g_agent_fds) {
    const int fd = f.fd.exchange(-1);
    if (fd >= 0) ::close(fd);
  }
}
void register_fd(int fd) {
  static std::once_flag once;
  std::call_once(once, [] { pthread_atfork(nullptr, nullptr, close_inherited_agent_fds); });
  for (auto& f : g_agent_fds) {
    int free = -1;
    if (f.fd.compare_exchange_strong(free, fd)) return;
  }
  // More than 256 clients in one process: the extra ones are not closed in children; their
  // agents then see EOF only when the children exit too (locks held longer, never wrongly).
}
void unregister_fd(int fd) {
  for (auto& f : g_agent_fds) {
    int mine = fd;
    if (f.fd.compare_exchange_strong(mine, -1)) return;
  }
}

Status detached_status(bool forked) {
  return Status(ErrorCode::kDetached, forked ? "client handle used in a forked child: call Client::attach in the child"
                                             : "client is detached");
}

void put_handle(Writer& w, SessionHandle s) {
  w.u64(s.key);
  w.u64(s.generation);
}
void put_grant(Writer& w, const Grant& g) {
  w.u64(g.token);
  w.u64(g.id);
}
// The start of every request made under a grant: the session and the grant.
Writer under(SessionHandle s, const Grant& g) {
  Writer w;
  put_handle(w, s);
  put_grant(w, g);
  return w;
}
Result<SessionHandle> handle_from(Result<std::string> r) {
  if (!r) return r.status();
  Reader in(*r);
  SessionHandle h{in.u64(), in.u64()};
  if (in.failed()) return Status(ErrorCode::kUnavailable, "etcd agent: malformed reply");
  return h;
}
Status status_from(const Result<std::string>& r) { return r ? Status{} : r.status(); }

}  // namespace

// ---- starting the agent ----

Result<std::unique_ptr<AgentBackend>> AgentBackend::attach(const std::string& address) {
  const std::string path = agent_path();
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return Status(ErrorCode::kSystem, fmt::format("socketpair: {}", std::strerror(errno)));
  const int mfd = memfd_create("sessionbroker-etcd-words", MFD_CLOEXEC);
  void* map = MAP_FAILED;
  if (mfd >= 0 && ftruncate(mfd, sizeof(SharedWords)) == 0)
    map = mmap(nullptr, sizeof(SharedWords), PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
  if (map == MAP_FAILED) {
    const int e = errno;
    ::close(sv[0]), ::close(sv[1]);
    if (mfd >= 0) ::close(mfd);
    return Status(ErrorCode::kSystem, fmt::format("memfd for the etcd agent: {}", std::strerror(e)));
  }
  auto* words = new (map) SharedWords{};
  // Everything the child needs is ready before fork: it only calls async-signal-safe functions.
  std::string arg0 = path, arg1 = address, arg2 = std::to_string(::getpid());
  char* argv[] = {arg0.data(), arg1.data(), arg2.data(), nullptr};
  const pid_t pid = fork();
  if (pid == 0) {
    setsid();  // a terminal's ^C is for the application, which detaches; not for its agent
    const int sock = fcntl(sv[1], F_DUPFD, 10), words_fd = fcntl(mfd, F_DUPFD, 10);
    if (sock < 0 || words_fd < 0 || dup2(sock, 3) != 3 || dup2(words_fd, 4) != 4) _exit(126);
    const int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, 0);
    syscall(SYS_close_range, 5u, ~0u, 0u);
    execv(argv[0], argv);
    _exit(127);
  }
  ::close(sv[1]);
  ::close(mfd);
  if (pid < 0) {
    const int e = errno;
    ::close(sv[0]);
    munmap(map, sizeof(SharedWords));
    return Status(ErrorCode::kSystem, fmt::format("fork for the etcd agent: {}", std::strerror(e)));
  }
  // Frame 0: did the agent attach?
  std::string body;
  Status st;
  if (!agent::read_frame(sv[0], body)) {
    st = Status(ErrorCode::kSystem, fmt::format("the etcd agent '{}' did not start (set SESSIONBROKER_ETCD_AGENT "
                                                "to its path)", path));
  } else {
    Reader in(body);
    (void)in.u64();
    const auto code = static_cast<ErrorCode>(in.u8());
    std::string message = in.str();
    if (in.failed()) st = Status(ErrorCode::kUnavailable, "etcd agent: malformed first frame");
    else if (code != ErrorCode::kOk) st = Status(code, std::move(message));
  }
  if (!st) {
    ::close(sv[0]);
    waitpid(pid, nullptr, 0);
    munmap(map, sizeof(SharedWords));
    return st;
  }
  register_fd(sv[0]);
  std::unique_ptr<AgentBackend> b(new AgentBackend(sv[0], words, pid));
  b->hangup_ = new std::thread([raw = b.get()] { raw->watch_hangup(); });
  return b;
}

AgentBackend::AgentBackend(int fd, SharedWords* words, pid_t agent)
    : fd_(fd), words_(words), agent_(agent), fork_epoch_(fork_epoch()) {}

AgentBackend::~AgentBackend() {
  if (forked()) return;  // the parent's: its socket is closed (atfork), its thread does not exist here
  (void)detach();
  munmap(words_, sizeof(SharedWords));
}

bool AgentBackend::forked() const { return forked_since(fork_epoch_); }

// ---- calls ----

Result<std::string> AgentBackend::call(Op op, const Writer& payload, bool gated) {
  if (forked()) return detached_status(true);
  std::optional<CallGate::Pass> pass;
  if (gated) {
    pass.emplace(gate_);
    if (!pass->entered()) return detached_status(false);
  }
  Pending p;
  std::uint64_t id;
  {
    std::lock_guard lk(mu_);
    if (!gone_.is_ok()) return gone_;
    id = next_id_++;
    pending_[id] = &p;
  }
  Writer req;
  req.u64(id);
  req.u8(static_cast<std::uint8_t>(op));
  std::string frame = req.frame();
  const std::uint32_t len = static_cast<std::uint32_t>(frame.size() - 4 + payload.bytes().size());
  std::memcpy(frame.data(), &len, 4);
  frame += payload.bytes();
  bool sent;
  {
    std::lock_guard lk(write_mu_);
    sent = agent::write_all(fd_, frame);
  }
  std::unique_lock lk(mu_);
  if (!sent && gone_.is_ok()) {
    pending_.erase(id);
    return Status(ErrorCode::kUnavailable, fmt::format("the etcd agent (pid {}) is gone", agent_));
  }
  read_until_done(lk, p);
  if (p.code != 0) return Status(static_cast<ErrorCode>(p.code), std::move(p.message));
  return std::move(p.payload);
}

void AgentBackend::read_until_done(std::unique_lock<std::mutex>& lk, Pending& p) {
  while (!p.done) {
    if (reading_) {  // another caller reads: it hands us our reply, or the reading
      p.cv.wait(lk);
      continue;
    }
    reading_ = true;
    lk.unlock();
    std::string body;
    const bool ok = agent::read_frame(fd_, body);
    lk.lock();
    reading_ = false;
    Reader in(body);
    const std::uint64_t id = in.u64();
    const std::uint8_t code = in.u8();
    std::string message = in.str();
    if (!ok || in.failed()) {
      lk.unlock();
      agent_gone(detached_.load() ? "client is detached"
                                  : fmt::format("the etcd agent (pid {}) exited: every lock of this process is lost", agent_));
      lk.lock();
      break;
    }
    auto it = pending_.find(id);
    if (it == pending_.end()) continue;
    Pending& q = *it->second;
    q.code = code;
    q.payload = body.substr(8 + 1 + 4 + message.size());
    q.message = std::move(message);
    q.done = true;
    pending_.erase(it);
    if (&q != &p) q.cv.notify_one();
  }
  // Our reply is in: a caller still waiting becomes the reader.
  if (!reading_) {
    for (auto& [id, q] : pending_) {
      q->cv.notify_one();
      break;
    }
  }
}

// Sleeps until the socket hangs up (the agent died, or detach shut it down); replies are left to
// the callers (POLLIN is not asked for, so they never wake this thread).
void AgentBackend::watch_hangup() {
  pollfd pfd{fd_, POLLRDHUP, 0};
  while (poll(&pfd, 1, -1) < 0 && errno == EINTR) {
  }
  agent_gone(detached_.load() ? "client is detached"
                              : fmt::format("the etcd agent (pid {}) exited: every lock of this process is lost", agent_));
}

// The agent is gone: its leases will expire (or were revoked), so every grant is lost.
void AgentBackend::agent_gone(const std::string& why) {
  {
    std::lock_guard lk(mu_);
    gone_ = Status(detached_.load() ? ErrorCode::kDetached : ErrorCode::kUnavailable, why);
    for (auto& [id, p] : pending_) {
      p->code = static_cast<std::uint8_t>(gone_.code());
      p->message = why;
      p->done = true;
      p->cv.notify_one();
    }
    pending_.clear();
  }
  for (auto& slot : words_->slots) std::atomic_ref<std::uint32_t>(slot.state).store(0, std::memory_order_release);
  shm::bump_and_wake(words_->epoch);
  waitpid(agent_, nullptr, WNOHANG);
}

void AgentBackend::close() {
  if (forked()) return;
  if (gate_.close()) (void)call(Op::kClose, Writer{}, false);  // the agent calls its waiters back
  gate_.drain();
}

Status AgentBackend::detach() {
  if (forked()) return {};
  close();
  if (detached_.exchange(true)) return {};
  Status st = status_from(call(Op::kDetach, Writer{}, false));
  ::shutdown(fd_, SHUT_RDWR);
  if (hangup_) {
    hangup_->join();
    delete std::exchange(hangup_, nullptr);
  }
  unregister_fd(fd_);
  ::close(fd_);
  waitpid(agent_, nullptr, 0);
  return st;
}

// ---- sessions ----

Result<SessionHandle> AgentBackend::create_session(std::string_view id, std::uint64_t ttl_ms) {
  Writer w;
  w.str(id);
  w.u64(ttl_ms);
  return handle_from(call(Op::kCreate, w));
}

Result<SessionHandle> AgentBackend::open_session(std::string_view id) {
  Writer w;
  w.str(id);
  return handle_from(call(Op::kOpen, w));
}

Result<SessionHandle> AgentBackend::open_or_create_session(std::string_view id, std::uint64_t ttl_ms, bool& created) {
  Writer w;
  w.str(id);
  w.u64(ttl_ms);
  auto r = call(Op::kOpenOrCreate, w);
  created = false;
  if (!r) return r.status();
  Reader in(*r);
  SessionHandle h{in.u64(), in.u64()};
  created = in.u8() != 0;
  if (in.failed()) return Status(ErrorCode::kUnavailable, "etcd agent: malformed reply");
  return h;
}

Status AgentBackend::destroy_session(SessionHandle s, const Grant* own) {
  Writer w;
  put_handle(w, s);
  w.u8(own != nullptr);
  put_grant(w, own ? *own : Grant{});
  return status_from(call(Op::kDestroy, w));
}

Result<std::vector<std::string>> AgentBackend::list_sessions() {
  auto r = call(Op::kList, Writer{});
  if (!r) return r.status();
  Reader in(*r);
  std::vector<std::string> ids(in.u32());
  for (auto& id : ids) id = in.str();
  if (in.failed()) return Status(ErrorCode::kUnavailable, "etcd agent: malformed reply");
  return ids;
}

Result<std::vector<std::int32_t>> AgentBackend::holder_pids(SessionHandle s) {
  Writer w;
  put_handle(w, s);
  auto r = call(Op::kHolders, w);
  if (!r) return r.status();
  Reader in(*r);
  std::vector<std::int32_t> pids(in.u32());
  for (auto& p : pids) p = static_cast<std::int32_t>(in.u32());
  if (in.failed()) return Status(ErrorCode::kUnavailable, "etcd agent: malformed reply");
  return pids;
}

// ---- locks ----

namespace {
Result<Grant> grant_from(Result<std::string> r) {
  if (!r) return r.status();
  Reader in(*r);
  Grant g{in.u64(), in.u64()};
  if (in.failed() || g.id >= kGrantSlots) return Status(ErrorCode::kUnavailable, "etcd agent: malformed reply");
  return g;
}
}  // namespace

Result<Grant> AgentBackend::acquire(SessionHandle s, Mode mode, Clock::time_point deadline) {
  Writer w;
  put_handle(w, s);
  w.u8(mode == Mode::kExclusive);
  w.u64(static_cast<std::uint64_t>(deadline.time_since_epoch().count()));  // CLOCK_MONOTONIC: one per host
  return grant_from(call(Op::kAcquire, w));
}

Result<Grant> AgentBackend::try_acquire(SessionHandle s, Mode mode) {
  Writer w;
  put_handle(w, s);
  w.u8(mode == Mode::kExclusive);
  return grant_from(call(Op::kTryAcquire, w));
}

Status AgentBackend::release(SessionHandle s, const Grant& g) {
  Writer w = under(s, g);
  return status_from(call(Op::kRelease, w));
}

GrantWords AgentBackend::grant_words(const Grant& g) { return words_of(*words_, g); }
GrantStatus AgentBackend::grant_status(const Grant& g) { return status_of(*words_, g); }

// ---- expiry and data ----

void AgentBackend::touch(SessionHandle s) {
  Writer w;
  put_handle(w, s);
  (void)call(Op::kTouch, w);
}

Status AgentBackend::set_ttl(SessionHandle s, const Grant& g, std::uint64_t ttl_ms) {
  Writer w = under(s, g);
  w.u64(ttl_ms);
  return status_from(call(Op::kSetTtl, w));
}

Status AgentBackend::touch(SessionHandle s, const Grant& g) {
  Writer w = under(s, g);
  return status_from(call(Op::kTouchFenced, w));
}

Result<std::optional<std::uint64_t>> AgentBackend::ttl_remaining(SessionHandle s, const Grant& g) {
  Writer w = under(s, g);
  auto r = call(Op::kTtlRemaining, w);
  if (!r) return r.status();
  Reader in(*r);
  const bool has = in.u8() != 0;
  const std::uint64_t ms = in.u64();
  if (in.failed()) return Status(ErrorCode::kUnavailable, "etcd agent: malformed reply");
  return has ? std::optional<std::uint64_t>(ms) : std::nullopt;
}

// No ReadCopy: the agent keeps what it needs.
Result<std::optional<std::string>> AgentBackend::read(SessionHandle s, const Grant& g, std::string_view name,
                                                       ReadCopySlot* /*copy*/) {
  Writer w = under(s, g);
  w.str(name);
  auto r = call(Op::kRead, w);
  if (!r) return r.status();
  Reader in(*r);
  const bool found = in.u8() != 0;
  std::string value = in.str();
  if (in.failed()) return Status(ErrorCode::kUnavailable, "etcd agent: malformed reply");
  return found ? std::optional<std::string>(std::move(value)) : std::nullopt;
}

Result<AttrMap> AgentBackend::read_all(SessionHandle s, const Grant& g, ReadCopySlot* /*copy*/) {
  Writer w = under(s, g);
  auto r = call(Op::kReadAll, w);
  if (!r) return r.status();
  Reader in(*r);
  AttrMap attrs;
  for (std::uint32_t n = in.u32(); n > 0 && !in.failed(); --n) {
    std::string name = in.str();
    attrs.insert_or_assign(std::move(name), in.str());
  }
  if (in.failed()) return Status(ErrorCode::kUnavailable, "etcd agent: malformed reply");
  return attrs;
}

Status AgentBackend::commit(SessionHandle s, const Grant& g, const ChangeSet& changes, ReadCopySlot* /*copy*/) {
  Writer w = under(s, g);
  w.u32(static_cast<std::uint32_t>(changes.size()));
  for (const auto& [name, value] : changes) {
    w.str(name);
    w.u8(value.has_value());
    w.str(value ? *value : std::string_view{});
  }
  return status_from(call(Op::kCommit, w));
}

// ---- notifications: the shared epoch word ----

std::uint32_t AgentBackend::notification_epoch() { return shm::load(words_->epoch); }
void AgentBackend::wait_notification(std::uint32_t seen, Clock::time_point deadline) {
  shm::futex_wait(words_->epoch, seen, deadline);
}
void AgentBackend::interrupt_notification_wait() { shm::bump_and_wake(words_->epoch); }

}  // namespace sessionbroker::detail::etcd
