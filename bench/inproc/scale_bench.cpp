// Scenario 5 (latency at scale) and scenario 7 (memory, attach), in-process.
//
//   s5  Store-level acquire + release of a session picked at random among N live sessions, with
//       N = 1K, 100K, 1M in a segment made for 1M (2^20) sessions; and the same preceded by the
//       lookup a request does first (open by id through the index). Random picks make the
//       working set grow with N, which is what a bigger table costs: cache and TLB misses. The
//       floor for that: a robust pthread mutex lock+unlock of one picked at random among the same
//       N session slots' own mutexes (what the memory system charges at that size, in the same
//       pages). The rows name the page size the segment got (2 MiB where the tmpfs on /dev/shm
//       allows huge pages: Segment::pages()).
//   s7  segment bytes per session holding 4 attributes of 64 B (measured from the blocks used),
//       against Redis's used_memory per hash of the same 4 fields; and the time a new client
//       takes to attach (Client::attach: map, validate, register, start its revoke thread),
//       against a Redis connect + PING.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include "inproc.hpp"
#include "blob_store.hpp"
#include "lock_table.hpp"
#include "registry.hpp"

namespace sbbench {
namespace {

using namespace std::chrono_literals;
using sessionbroker::detail::SessionRef;
using sessionbroker::detail::BlobStore;
using sessionbroker::detail::LockTable;
using sessionbroker::detail::Registry;
namespace shm = sessionbroker::shm;

constexpr std::uint32_t kScaleCapacity = 1u << 20;

// The 1M segment, filled progressively as the benchmarks ask for more sessions.
struct ScaleFixture {
  ScopedSegment seg{"s5scale", caps(8, kScaleCapacity, 64 * 1024)};
  Registry registry{seg.seg()};
  LockTable locks{seg.seg(), registry};
  std::vector<SessionRef> refs;
  std::vector<std::string> ids;
  // The page size the segment got (every page was touched by its creation; see Segment::pages()).
  std::string pages = describe(seg.seg().pages());

  static std::string describe(const sessionbroker::detail::PageUse& p) {
    if (!p.known) return "page size unknown";
    if (p.huge_bytes == 0) return "4 KiB pages";
    if (p.huge_bytes * 10 >= p.bytes * 9) return "2 MiB pages";
    return fmt::format("{}% in 2 MiB pages", p.huge_bytes * 100 / p.bytes);
  }

  void fill_to(std::uint32_t n) {
    refs.reserve(n);
    ids.reserve(n);
    while (refs.size() < n) {
      ids.push_back("session:" + std::to_string(refs.size()));
      auto ref = registry.create_session(ids.back(), 0);
      if (!ref) {
        std::fprintf(stderr, "s5: %s\n", ref.status().to_string().c_str());
        std::exit(1);
      }
      refs.push_back(*ref);
    }
  }
};
std::unique_ptr<ScaleFixture> g_scale;

ScaleFixture& scale(std::uint32_t n) {
  if (!g_scale) g_scale = std::make_unique<ScaleFixture>();
  g_scale->fill_to(n);
  return *g_scale;
}

std::string count_name(std::uint32_t n) { return n >= 1'000'000 ? "1M" : n >= 1000 ? std::to_string(n / 1000) + "K" : std::to_string(n); }

// The random picks, drawn before timing and read in order: a request has its session's id (or
// handle) at hand, so the harness must not add a cache and TLB miss of its own per operation (a
// random read of a 1M-entry vector was a quarter of the 1M figure).
struct Pick {
  SessionRef ref;
  std::uint8_t id_len;
  char id[23];
  std::string_view id_view() const { return {id, id_len}; }
};
std::vector<Pick> draw_picks(const ScaleFixture& f, std::uint32_t n) {
  constexpr std::size_t kPicks = 1u << 18;
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<std::uint32_t> pick(0, n - 1);
  std::vector<Pick> picks(kPicks);
  for (auto& p : picks) {
    const std::uint32_t i = pick(rng);
    p.ref = f.refs[i];
    p.id_len = static_cast<std::uint8_t>(std::min(f.ids[i].size(), sizeof p.id));
    std::memcpy(p.id, f.ids[i].data(), p.id_len);
  }
  return picks;
}

void sb_scale(benchmark::State& st, std::uint32_t n, bool with_open) {
  auto& f = scale(n);
  auto me = f.registry.attach_client(getpid());
  const std::uint32_t rec = f.seg.seg().first_record_of(*me);
  const std::vector<Pick> picks = draw_picks(f, n);
  std::size_t next = 0;
  const auto deadline = sessionbroker::Clock::now();  // never waited for: every session is free
  Sampler s(st, with_open ? 2 : 4);
  s.run([&] {
    const Pick& p = picks[next++ & (picks.size() - 1)];
    const SessionRef ref = with_open ? *f.registry.open_session(p.id_view()) : p.ref;
    auto g = f.locks.acquire(*me, rec, ref, shm::LockMode::kExclusive, deadline);
    (void)f.locks.release(ref, *g);
  });
  f.registry.detach_client(*me, f.seg.seg().client(*me).generation);
  const std::string group = with_open ? "s5.open_acquire" : "s5.acquire";
  const std::string title = with_open ? "5. open by id + acquire + release, random session among N"
                                      : "5. acquire + release, random session among N";
  s.report({group, title, "sb.n" + count_name(n), n == 1000 ? "base" : "sb",
            "sessionbroker Store, " + count_name(n) + " sessions in a 1M segment (" + f.pages + ")"});
}

void floor_scale(benchmark::State& st, std::uint32_t n) {
  auto& f = scale(n);  // the mutexes of the slots sessionbroker picks from, in the same pages
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<std::uint32_t> pick(0, n - 1);
  std::vector<shm::RobustMutexData*> picks(1u << 18);  // drawn before timing, as for sessionbroker
  for (auto& p : picks) p = &f.seg.seg().session(f.refs[pick(rng)].slot).mutex;
  std::size_t next = 0;
  Sampler s(st, 4);
  s.run([&] {
    auto& m = *picks[next++ & (picks.size() - 1)];
    shm::robust_mutex_lock(m);
    shm::robust_mutex_unlock(m);
  });
  const Row row{"", "", "floor.mutex_n" + count_name(n), "floor",
                "robust mutex lock+unlock, a random one of " + count_name(n) + " session slots' (" + f.pages + ")"};
  s.report({"s5.acquire", "5. acquire + release, random session among N", row.id, row.role, row.label},
           {{"s5.open_acquire", "5. open by id + acquire + release, random session among N"}});
}

void sb_memory(benchmark::State& st) {
  const std::uint32_t sessions = env().opts.quick ? 1000 : 10000;
  ScopedSegment seg("s7mem", caps(4, sessions, std::uint64_t{sessions} * 4 * shm::kBlockBytes));
  auto client = sessionbroker::Client::attach(seg.name());
  const std::string value(64, 'v');
  const std::uint32_t free_before = BlobStore(seg.seg()).free_blocks();
  for (auto _ : st) {
    for (std::uint32_t i = 0; i < sessions; ++i) {
      auto s = (*client)->create("session:" + std::to_string(i));
      auto l = s->lock_all(sessionbroker::Mode::kExclusive, sessionbroker::in(1s));
      for (int a = 0; a < 4; ++a) (void)l->put("attr" + std::to_string(a), value);
      (void)l->unlock();
      (void)s->release(sessionbroker::in(1s));
    }
  }
  const double blocks = static_cast<double>(free_before - BlobStore(seg.seg()).free_blocks()) / sessions;
  const auto& regions = seg.seg().header().regions;
  const double index = 4.0 * regions.index_size / sessions;
  const double bytes = sizeof(shm::SessionSlot) + index + blocks * shm::kBlockBytes;
  (void)(*client)->detach();
  st.counters["bytes_per_session"] = bytes;
  env().sink->value("s7.memory", "7. memory per session with 4 attributes of 64 B", "sb.bytes_per_session", "sb",
                    "sessionbroker segment bytes per session (slot + index + attribute blocks)", bytes, "bytes",
                    fmt::format("{} B slot + {:.1f} B index + {:.2f} blocks of {} B", sizeof(shm::SessionSlot), index,
                                blocks, shm::kBlockBytes));
}

void peer_redis_memory(benchmark::State& st) {
  const Row row{"s7.memory", "7. memory per session with 4 attributes of 64 B", "peer.redis_hash", "peer",
                "Redis used_memory per hash of 4 fields of 64 B"};
  if (!need_redis(st, row)) return;
  const int sessions = env().opts.quick ? 1000 : 10000;
  RedisConn c(*env().redis, Transport::kUnix);
  double bytes = 0;
  for (auto _ : st) {
    c.command("FLUSHALL");
    const long long before = c.info_field("used_memory");
    c.hset4_pipelined("s7:session:", 0, sessions, std::string(64, 'v'));
    bytes = static_cast<double>(c.info_field("used_memory") - before) / sessions;
    c.command("FLUSHALL");
  }
  st.counters["bytes_per_session"] = bytes;
  env().sink->value(row.group, row.group_title, row.id, row.role, row.label, bytes, "bytes");
}

const char* kAttach = "s7.attach";
const char* kAttachTitle = "7. attach time of a new client";

void sb_attach(benchmark::State& st, bool big) {
  std::unique_ptr<ScopedSegment> small;
  std::string name;
  if (big) {
    name = scale(1000).seg.name();
  } else {
    small = std::make_unique<ScopedSegment>("s7attach", caps(16, 1024, 1 << 20));
    name = small->name();
  }
  Sampler s(st, 1);
  for (auto _ : st) {
    const std::uint64_t t0 = now_ns();
    auto c = sessionbroker::Client::attach(name);
    s.add_batch(now_ns() - t0);
    (void)(*c)->detach();
  }
  s.report({kAttach, kAttachTitle, big ? "sb.attach_1M" : "sb.attach_1K", "sb",
            std::string("sessionbroker Client::attach, segment for ") + (big ? "1M" : "1K") + " sessions"});
}

void peer_redis_connect(benchmark::State& st, Transport t) {
  const Row row{kAttach, kAttachTitle, std::string("peer.redis_connect_") + transport_name(t), "peer",
                std::string("Redis connect + PING, ") + transport_name(t)};
  if (!need_redis(st, row)) return;
  Sampler s(st, 1);
  for (auto _ : st) s.add_batch(time_connect_ping(*env().redis, t));
  s.report(row);
}

}  // namespace

void register_scale_benches() {
  for (bool with_open : {false, true})
    for (std::uint32_t n : {1000u, 100'000u, 1'000'000u})
      benchmark::RegisterBenchmark(((with_open ? "s5/open_acquire." : "s5/acquire.") + count_name(n)).c_str(), sb_scale,
                                   n, with_open);
  for (std::uint32_t n : {1000u, 1'000'000u})
    benchmark::RegisterBenchmark(("s5/floor.mutex." + count_name(n)).c_str(), floor_scale, n);
  benchmark::RegisterBenchmark("s7/memory/sb", sb_memory)->Iterations(1);
  benchmark::RegisterBenchmark("s7/memory/redis", peer_redis_memory)->Iterations(1);
  benchmark::RegisterBenchmark("s7/attach/sb_1K", sb_attach, false);
  benchmark::RegisterBenchmark("s7/attach/sb_1M", sb_attach, true);
  benchmark::RegisterBenchmark("s7/attach/redis_tcp", peer_redis_connect, Transport::kTcp);
  benchmark::RegisterBenchmark("s7/attach/redis_unix", peer_redis_connect, Transport::kUnix);
}

void release_scale_fixtures() { g_scale.reset(); }

}  // namespace sbbench
