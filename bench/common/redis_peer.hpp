// The Redis peers: a private redis-server and a hiredis client that locks the way phpredis and
// Redlock clients do.
//
// Lock (phpredis's session locking, Redlock's single-instance case):
//   acquire: SET <key> <token> NX PX <ttl>; on failure sleep the retry interval and try again
//            (phpredis: redis.session.lock_wait_time, 2000 us by default)
//   release: EVALSHA of  if GET(key) == token then DEL(key)  (never deletes another holder's lock)
// Handoff best case: the waiter blocks in BLPOP on a list and the holder RPUSHes to it, so the
// server wakes the waiter the moment the holder lets go (no polling).
//
// The server listens on 127.0.0.1 on a free port and on a unix socket in the bench's temporary
// directory, with persistence off; it gets SIGTERM if the bench process that started it dies.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

struct redisContext;

namespace sbbench {

inline constexpr int kPhpredisRetryUs = 2000;  // phpredis redis.session.lock_wait_time default
inline constexpr int kLockTtlMs = 30000;        // PX: long enough never to expire during a bench

class RedisServer {
 public:
  // Starts redis-server and waits until it answers. Returns nullptr (and says why on stderr) when
  // the bench was built without hiredis or redis-server cannot be started.
  static std::unique_ptr<RedisServer> start();
  ~RedisServer();  // stops the server and removes its socket
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return port_; }
  const std::string& socket() const { return socket_; }

 private:
  RedisServer(int pid, int port, std::string socket) : pid_(pid), port_(port), socket_(std::move(socket)) {}
  int pid_;
  int port_;
  std::string socket_;
};

enum class Transport { kTcp, kUnix };
inline const char* transport_name(Transport t) { return t == Transport::kTcp ? "tcp" : "unix"; }

// Nanoseconds to open a connection and get the answer to a PING (a new client "attaching").
std::uint64_t time_connect_ping(const RedisServer& server, Transport t);

class RedisConn {
 public:
  // Connects and loads the release script. Exits the program when that fails (the server is ours).
  RedisConn(const RedisServer& server, Transport t);
  ~RedisConn();
  RedisConn(const RedisConn&) = delete;
  RedisConn& operator=(const RedisConn&) = delete;

  bool try_lock(const std::string& key, const std::string& token);
  // Retries every `retry_us` until locked or `deadline_ns` (CLOCK_MONOTONIC) passes.
  bool lock_retrying(const std::string& key, const std::string& token, int retry_us, std::uint64_t deadline_ns);
  bool unlock(const std::string& key, const std::string& token);

  void rpush(const std::string& key, const std::string& value);
  // Blocks up to `timeout_s` (whole seconds, at least 1) for an element of `key`.
  bool blpop(const std::string& key, int timeout_s);

  // An integer field of INFO (for example "blocked_clients", "used_memory"), or -1.
  long long info_field(const std::string& field);
  // Runs a command given as separate arguments, ignoring its reply (setup only).
  void command(const std::string& a, const std::string& b = {}, const std::string& c = {},
               const std::string& d = {});
  // Sends `n` HSETs of a 4-field hash without waiting for each reply (pipelined).
  void hset4_pipelined(const std::string& key_prefix, int first, int n, const std::string& value);
  bool ping();

 private:
  redisContext* ctx_;
  std::string release_sha_;
};

}  // namespace sbbench
