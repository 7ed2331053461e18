// Scenario 4, in-process: reading, and writing + committing, one attribute of 64 B, 4 KiB and
// 64 KiB while the process holds the session. Peers: Redis GET and SET of a value of the same
// size (no lock: the cost of moving the bytes through the server), over TCP and a unix socket.
//
// A read copies the committed value out of shared memory (under the session mutex). A write
// buffers in the process; commit() builds a new blob of the whole session state and publishes it
// (copy-on-write), so its cost grows with the session's size.
#include <benchmark/benchmark.h>

#include <string>

#include "inproc.hpp"

namespace sbbench {
namespace {

using namespace std::chrono_literals;
using sessionbroker::Mode;
using sessionbroker::in;

std::string size_name(std::size_t n) { return n >= 1024 ? std::to_string(n / 1024) + "KiB" : std::to_string(n) + "B"; }

Row row(const char* op, std::size_t size, const std::string& id, const std::string& role, const std::string& label) {
  const std::string g = std::string("s4.") + op + "." + size_name(size);
  const std::string title = std::string("4. ") + (op[0] == 'r' ? "read " : "write + commit ") + size_name(size) +
                            " attribute under a held lock";
  return {g, title, id, role, label};
}

int batch_for(std::size_t size) { return size <= 64 ? 8 : size <= 4096 ? 2 : 1; }

void sb_read(benchmark::State& st, std::size_t size) {
  auto session = fixture_session("s4-" + size_name(size));
  auto lock = session.lock({"a"}, Mode::kExclusive, in(1s));
  (void)lock->put("a", std::string(size, 'x'));
  (void)lock->commit();
  Sampler s(st, batch_for(size));
  s.run([&] { benchmark::DoNotOptimize(lock->get("a")); });
  s.report(row("read", size, "sb.read", "sb", "sessionbroker: get() of a committed attribute"));
}

void sb_write_commit(benchmark::State& st, std::size_t size) {
  auto session = fixture_session("s4-" + size_name(size));
  auto lock = session.lock({"a"}, Mode::kExclusive, in(1s));
  const std::string value(size, 'y');
  Sampler s(st, batch_for(size));
  s.run([&] {
    (void)lock->put("a", value);
    (void)lock->commit();
  });
  s.report(row("write", size, "sb.write_commit", "sb", "sessionbroker: put() + commit() (copy-on-write publish)"));
}

void peer_redis(benchmark::State& st, std::size_t size, Transport t, bool write) {
  const std::string tn = transport_name(t);
  const Row r = row(write ? "write" : "read", size, std::string("peer.redis_") + (write ? "set_" : "get_") + tn, "peer",
                    std::string("Redis ") + (write ? "SET" : "GET") + " of the value, " + tn);
  if (!need_redis(st, r)) return;
  RedisConn c(*env().redis, t);
  const std::string key = "s4:" + size_name(size), value(size, 'z');
  c.command("SET", key, value);
  Sampler s(st, 1);
  if (write) s.run([&] { c.command("SET", key, value); });
  else s.run([&] { c.command("GET", key); });
  s.report(r);
}

}  // namespace

void register_data_benches() {
  for (std::size_t size : {64u, 4096u, 65536u}) {
    const std::string n = size_name(size);
    benchmark::RegisterBenchmark(("s4/read." + n + "/sb").c_str(), sb_read, size);
    benchmark::RegisterBenchmark(("s4/write." + n + "/sb").c_str(), sb_write_commit, size);
    for (Transport t : {Transport::kTcp, Transport::kUnix}) {
      const std::string tn = transport_name(t);
      benchmark::RegisterBenchmark(("s4/read." + n + "/redis_" + tn).c_str(), peer_redis, size, t, false);
      benchmark::RegisterBenchmark(("s4/write." + n + "/redis_" + tn).c_str(), peer_redis, size, t, true);
    }
  }
}

}  // namespace sbbench
