#include "redis_peer.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "env.hpp"

#if SBBENCH_HAVE_HIREDIS
#include <hiredis/hiredis.h>
#endif

namespace sbbench {
namespace {

// A port the kernel just handed out on 127.0.0.1; free unless another program grabs it first.
int free_loopback_port() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  close(fd);
  return port;
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "redis peer: %s\n", what.c_str());
  std::exit(1);
}

}  // namespace

#if SBBENCH_HAVE_HIREDIS

std::unique_ptr<RedisServer> RedisServer::start() {
  const int port = free_loopback_port();
  const std::string dir = tmp_dir(), sock = dir + "/redis.sock";
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1);
    const int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, STDOUT_FILENO);
    const std::string p = std::to_string(port);
    execlp("redis-server", "redis-server", "--port", p.c_str(), "--bind", "127.0.0.1", "--unixsocket", sock.c_str(),
           "--unixsocketperm", "700", "--save", "", "--appendonly", "no", "--dir", dir.c_str(), "--logfile", "",
           "--loglevel", "warning", "--databases", "1", static_cast<char*>(nullptr));
    _exit(127);
  }
  auto server = std::unique_ptr<RedisServer>(new RedisServer(pid, port, sock));
  for (int i = 0; i < 500; ++i) {  // up to 5 s for the server to listen
    if (waitpid(pid, nullptr, WNOHANG) == pid) {
      server->pid_ = -1;
      std::fprintf(stderr, "redis peer: redis-server exited at start (is it installed? bench/setup.sh)\n");
      return nullptr;
    }
    if (redisContext* c = redisConnectUnix(sock.c_str()); c && !c->err) {
      redisFree(c);
      return server;
    } else if (c) {
      redisFree(c);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::fprintf(stderr, "redis peer: redis-server did not answer within 5 s\n");
  return nullptr;
}

RedisServer::~RedisServer() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
  }
  unlink(socket_.c_str());
}

std::uint64_t time_connect_ping(const RedisServer& server, Transport t) {
  const std::uint64_t t0 = now_ns();
  redisContext* c = t == Transport::kTcp ? redisConnect("127.0.0.1", server.port()) : redisConnectUnix(server.socket().c_str());
  if (!c || c->err) die("connect failed");
  auto* r = static_cast<redisReply*>(redisCommand(c, "PING"));
  const std::uint64_t t1 = now_ns();
  if (r) freeReplyObject(r);
  redisFree(c);
  return t1 - t0;
}

RedisConn::RedisConn(const RedisServer& server, Transport t)
    : ctx_(t == Transport::kTcp ? redisConnect("127.0.0.1", server.port()) : redisConnectUnix(server.socket().c_str())) {
  if (!ctx_ || ctx_->err) die(std::string("connect: ") + (ctx_ ? ctx_->errstr : "out of memory"));
  if (t == Transport::kTcp) redisEnableKeepAlive(ctx_);
  static const char* kRelease =
      "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";
  auto* r = static_cast<redisReply*>(redisCommand(ctx_, "SCRIPT LOAD %s", kRelease));
  if (!r || r->type != REDIS_REPLY_STRING) die("SCRIPT LOAD failed");
  release_sha_.assign(r->str, r->len);
  freeReplyObject(r);
}

RedisConn::~RedisConn() { redisFree(ctx_); }

bool RedisConn::try_lock(const std::string& key, const std::string& token) {
  auto* r = static_cast<redisReply*>(redisCommand(ctx_, "SET %b %b NX PX %d", key.data(), key.size(), token.data(),
                                                  token.size(), kLockTtlMs));
  if (!r) die(std::string("SET: ") + ctx_->errstr);
  const bool ok = r->type == REDIS_REPLY_STATUS;  // "+OK"; nil when the key exists
  freeReplyObject(r);
  return ok;
}

bool RedisConn::lock_retrying(const std::string& key, const std::string& token, int retry_us, std::uint64_t deadline_ns) {
  for (;;) {
    if (try_lock(key, token)) return true;
    if (now_ns() >= deadline_ns) return false;
    usleep(static_cast<useconds_t>(retry_us));
  }
}

bool RedisConn::unlock(const std::string& key, const std::string& token) {
  auto* r = static_cast<redisReply*>(redisCommand(ctx_, "EVALSHA %s 1 %b %b", release_sha_.c_str(), key.data(),
                                                  key.size(), token.data(), token.size()));
  if (!r) die(std::string("EVALSHA: ") + ctx_->errstr);
  const bool ok = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
  freeReplyObject(r);
  return ok;
}

void RedisConn::rpush(const std::string& key, const std::string& value) {
  auto* r = static_cast<redisReply*>(redisCommand(ctx_, "RPUSH %b %b", key.data(), key.size(), value.data(), value.size()));
  if (!r) die(std::string("RPUSH: ") + ctx_->errstr);
  freeReplyObject(r);
}

bool RedisConn::blpop(const std::string& key, int timeout_s) {
  auto* r = static_cast<redisReply*>(redisCommand(ctx_, "BLPOP %b %d", key.data(), key.size(), timeout_s < 1 ? 1 : timeout_s));
  if (!r) die(std::string("BLPOP: ") + ctx_->errstr);
  const bool ok = r->type == REDIS_REPLY_ARRAY;
  freeReplyObject(r);
  return ok;
}

long long RedisConn::info_field(const std::string& field) {
  auto* r = static_cast<redisReply*>(redisCommand(ctx_, "INFO"));
  if (!r) die(std::string("INFO: ") + ctx_->errstr);
  long long v = -1;
  if (r->type == REDIS_REPLY_STRING) {
    const std::string text(r->str, r->len), needle = "\n" + field + ":";
    if (auto at = text.find(needle); at != std::string::npos) v = std::atoll(text.c_str() + at + needle.size());
  }
  freeReplyObject(r);
  return v;
}

void RedisConn::command(const std::string& a, const std::string& b, const std::string& c, const std::string& d) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const std::string* s : {&a, &b, &c, &d}) {
    if (s->empty()) break;
    argv.push_back(s->data());
    lens.push_back(s->size());
  }
  auto* r = static_cast<redisReply*>(redisCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), lens.data()));
  if (!r) die(a + ": " + ctx_->errstr);
  freeReplyObject(r);
}

void RedisConn::hset4_pipelined(const std::string& key_prefix, int first, int n, const std::string& value) {
  for (int i = first; i < first + n; ++i) {
    const std::string key = key_prefix + std::to_string(i);
    redisAppendCommand(ctx_, "HSET %b attr0 %b attr1 %b attr2 %b attr3 %b", key.data(), key.size(), value.data(),
                       value.size(), value.data(), value.size(), value.data(), value.size(), value.data(), value.size());
  }
  for (int i = 0; i < n; ++i) {
    void* reply = nullptr;
    if (redisGetReply(ctx_, &reply) != REDIS_OK) die(std::string("HSET: ") + ctx_->errstr);
    freeReplyObject(reply);
  }
}

bool RedisConn::ping() {
  auto* r = static_cast<redisReply*>(redisCommand(ctx_, "PING"));
  const bool ok = r && r->type == REDIS_REPLY_STATUS;
  if (r) freeReplyObject(r);
  return ok;
}

#else  // built without hiredis: every Redis peer reports itself skipped

std::unique_ptr<RedisServer> RedisServer::start() {
  std::fprintf(stderr, "redis peer: built without hiredis (run bench/setup.sh, then reconfigure)\n");
  (void)free_loopback_port;
  return nullptr;
}
RedisServer::~RedisServer() {}
std::uint64_t time_connect_ping(const RedisServer&, Transport) { return 0; }
RedisConn::RedisConn(const RedisServer&, Transport) : ctx_(nullptr) { die("built without hiredis"); }
RedisConn::~RedisConn() {}
bool RedisConn::try_lock(const std::string&, const std::string&) { return false; }
bool RedisConn::lock_retrying(const std::string&, const std::string&, int, std::uint64_t) { return false; }
bool RedisConn::unlock(const std::string&, const std::string&) { return false; }
void RedisConn::rpush(const std::string&, const std::string&) {}
bool RedisConn::blpop(const std::string&, int) { return false; }
long long RedisConn::info_field(const std::string&) { return -1; }
void RedisConn::command(const std::string&, const std::string&, const std::string&, const std::string&) {}
void RedisConn::hset4_pipelined(const std::string&, int, int, const std::string&) {}
bool RedisConn::ping() { return false; }

#endif

}  // namespace sbbench
