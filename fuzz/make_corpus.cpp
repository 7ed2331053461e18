// Writes the seed corpus of fuzz/segment_validate_fuzz.cpp: images of tiny segments built through the
// public client API and dumped from /dev/shm, plus truncated and garbled variants of them.
//
//   make_corpus OUTDIR        (fuzz/run.sh --make-corpus builds and runs it on fuzz/corpus)
//
// Capacities: 2 clients x 2 locks, 4 sessions, 8 blocks, 512-byte values: an image is 2 pages.
// Images are not byte-for-byte reproducible (pids, clocks, tokens): that does not matter to a seed.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "sessionbroker/client.hpp"
#include "segment.hpp"
#include "sessionbroker/shm/layout.hpp"

namespace {

using namespace std::chrono_literals;
using sessionbroker::Client;
using sessionbroker::in;
using sessionbroker::Mode;
using sessionbroker::detail::CreateOptions;
using sessionbroker::detail::Segment;
namespace shm = sessionbroker::shm;

using Bytes = std::vector<unsigned char>;

std::string g_out;
int g_failures = 0;

void die_if(bool bad, const std::string& what) {
  if (!bad) return;
  std::fprintf(stderr, "make_corpus: %s\n", what.c_str());
  ++g_failures;
}

Bytes read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

void write_seed(const std::string& name, const Bytes& b, bool expect_valid) {
  // Check the seed is what we say it is, on an aligned copy as the fuzz target does.
  auto* buf = static_cast<unsigned char*>(::operator new(b.size() + 1, std::align_val_t{4096}));
  std::memcpy(buf, b.data(), b.size());
  const auto st = Segment::validate(buf, b.size());
  ::operator delete(buf, std::align_val_t{4096});
  die_if(st.is_ok() != expect_valid, name + ": validate says '" + st.to_string() + "'");
  std::ofstream f(g_out + "/" + name, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  std::printf("%-28s %6zu bytes  %s\n", name.c_str(), b.size(), st.to_string().c_str());
}

Bytes dump(const std::string& segment) { return read_file("/dev/shm/" + segment); }

shm::Capacities tiny_caps() {
  shm::Capacities c{};
  c.max_clients = 2;
  c.locks_per_client = 2;
  c.max_sessions = 4;
  c.block_count = 8;
  c.max_value_bytes = 512;
  return c;
}

// Creates a fresh tiny segment, runs `body` with a client attached, removes the segment.
template <class F>
void with_segment(const std::string& tag, F&& body) {
  const std::string name = "sbfuzz-corpus-" + std::to_string(getpid()) + "-" + tag;
  CreateOptions opts;
  opts.caps = tiny_caps();
  auto seg = Segment::create(name, opts);
  if (!seg) {
    die_if(true, "create " + name + ": " + seg.status().to_string());
    return;
  }
  body(name);
  seg->reset();
  Segment::remove(name);
}

void put_all(sessionbroker::Session& s, std::initializer_list<std::pair<std::string, std::string>> kv) {
  auto lock = s.lock_all(Mode::kExclusive, in(2s));
  die_if(!lock, "lock_all: " + lock.status().to_string());
  if (!lock) return;
  for (const auto& [k, v] : kv) die_if(!lock->put(k, v), "put " + k);
  auto st = lock->unlock();
  die_if(!st, "unlock: " + st.to_string());
}

// Pointers into an image, for the garbled variants.
struct Img {
  Bytes& b;
  shm::SegmentHeader& h() { return *reinterpret_cast<shm::SegmentHeader*>(b.data()); }
  shm::SessionSlot& session(std::uint32_t i) {
    return reinterpret_cast<shm::SessionSlot*>(b.data() + h().regions.sessions)[i];
  }
  shm::Block& block(std::uint32_t i) { return reinterpret_cast<shm::Block*>(b.data() + h().regions.blocks)[i]; }
  // The first live session with a blob, or kNil.
  std::uint32_t session_with_blob() {
    for (std::uint32_t i = 0; i < h().caps.max_sessions; ++i)
      if (shm::state(session(i), std::memory_order_relaxed) == shm::SessionState::kLive && session(i).blob != shm::kNil) return i;
    return shm::kNil;
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
    return 2;
  }
  g_out = argv[1];

  // 1. A fresh segment: no client, no session, every block free.
  with_segment("empty", [](const std::string& name) { write_seed("valid_empty.img", dump(name), true); });

  // 2. Sessions with attributes: a value spanning blocks, rewrites (so the free list is shuffled),
  //    an erased attribute, an empty session. Dumped after detach.
  Bytes attrs;
  with_segment("attrs", [&](const std::string& name) {
    auto client = Client::attach(name);
    die_if(!client, "attach: " + client.status().to_string());
    if (!client) return;
    auto alpha = (*client)->create("alpha");
    auto beta = (*client)->create("beta");
    auto gamma = (*client)->create("gamma");
    die_if(!alpha || !beta || !gamma, "create sessions");
    if (!alpha || !beta || !gamma) return;
    put_all(*alpha, {{"x", "1"}, {"y", std::string(400, 'y')}, {"z", "zz"}});
    put_all(*beta, {{"k", "v"}, {"cart", "[1,2,3]"}});
    put_all(*alpha, {{"x", "2"}});
    {
      auto lock = beta->lock_all(Mode::kExclusive, in(2s));
      if (lock) (void)lock->erase("k"), (void)lock->unlock();
    }
    (void)alpha->release(in(1s));
    (void)beta->release(in(1s));
    (void)(*client)->detach();
    attrs = dump(name);
    write_seed("valid_attrs.img", attrs, true);
  });

  // 3. Live lock state: client 0 holds "s" exclusively (thread lock kept), client 1 waits in the
  //    queue, so the image has a holder, a waiter, a revoke flag and two live clients.
  Bytes queue;
  with_segment("queue", [&queue](const std::string& name) {
    auto holder = Client::attach(name);
    auto waiter = Client::attach(name);
    die_if(!holder || !waiter, "attach two clients");
    if (!holder || !waiter) return;
    auto s = (*holder)->create("s");
    die_if(!s, "create s");
    if (!s) return;
    put_all(*s, {{"owner", "holder"}});
    auto lock = s->lock_all(Mode::kExclusive, in(2s));
    die_if(!lock, "holder lock");
    std::thread t([&] {
      auto s2 = (*waiter)->open("s");
      if (!s2) return;
      auto l2 = s2->lock_all(Mode::kShared, in(3s));
    });
    std::this_thread::sleep_for(300ms);
    queue = dump(name);
    write_seed("valid_queue.img", queue, true);
    if (lock) (void)lock->unlock();
    (void)s->release(in(1s));
    t.join();
  });

  // 4. Full: every session slot used, attribute memory nearly exhausted, a client still attached.
  with_segment("full", [](const std::string& name) {
    auto client = Client::attach(name);
    if (!client) return die_if(true, "attach");
    for (const char* id : {"s0", "s1", "s2", "s3"}) {
      auto s = (*client)->create(id);
      if (!s) return die_if(true, std::string("create ") + id);
      put_all(*s, {{"v", std::string(id[1] == '0' ? 500 : 100, id[1])}});
    }
    write_seed("valid_full.img", dump(name), true);
  });

  if (attrs.empty()) return 1;
  // Truncated and garbled variants of valid_attrs.img.
  write_seed("short_100.img", Bytes(attrs.begin(), attrs.begin() + 100), false);
  write_seed("header_only.img", Bytes(attrs.begin(), attrs.begin() + sizeof(shm::SegmentHeader)), false);
  write_seed("one_page.img", Bytes(attrs.begin(), attrs.begin() + 4096), false);
  {
    Bytes b(attrs.begin(), attrs.begin() + 4096);
    Img{b}.h().magic = 0;  // creation interrupted
    write_seed("magic_zero.img", b, false);
  }
  {
    Bytes b = attrs;
    Img img{b};
    img.h().caps.max_sessions = 5;  // capacities no longer match the region map
    write_seed("caps_mismatch.img", b, false);
  }
  {
    Bytes b = attrs;
    Img img{b};
    img.h().fingerprint ^= 1;
    write_seed("fingerprint.img", Bytes(b.begin(), b.begin() + 4096), false);
  }
  {
    // Valid header, but the blob of the first session loops back on itself and another session's
    // blob starts out of range: walks must stop, not spin or read past the blocks.
    Bytes b = attrs;
    Img img{b};
    const std::uint32_t s = img.session_with_blob();
    if (s != shm::kNil) {
      std::uint32_t last = img.session(s).blob;
      for (int i = 0; i < 8 && img.block(last).next != shm::kNil && img.block(last).next < 8; ++i) last = img.block(last).next;
      img.block(last).next = img.session(s).blob;
      for (std::uint32_t i = 0; i < 4; ++i)
        if (i != s && shm::state(img.session(i), std::memory_order_relaxed) == shm::SessionState::kLive) img.session(i).blob = 9;
    }
    write_seed("blob_cycle.img", b, true);
  }
  {
    // Valid header, garbage blob contents: huge attr_count, oversized name and value lengths.
    Bytes b = attrs;
    Img img{b};
    const std::uint32_t s = img.session_with_blob();
    if (s != shm::kNil) {
      auto& blk = img.block(img.session(s).blob);
      const shm::BlobHeader bh{0xFFFFFFF0u, 0xFFFFFFFFu};
      std::memcpy(blk.payload, &bh, sizeof bh);
      blk.payload[sizeof bh] = 0xFF;  // name_len 255 > kMaxAttrNameBytes
    }
    img.h().free_head = 7;  // in range, but the free list now crosses a blob
    write_seed("blob_garbage.img", b, true);
  }
  {
    // Valid header whose free list is a cycle, and session words out of range.
    Bytes b = attrs;
    Img img{b};
    for (std::uint32_t i = 0; i < 8; ++i) img.block(i).next = (i + 1) % 8;
    img.h().free_head = 3;
    img.session(0).holders_head = 1000;
    img.session(0).queue_head = 2;
    img.session(0).id_len = 0xFFFFFFFFu;
    write_seed("freelist_cycle.img", b, true);
  }
  if (!queue.empty()) {
    // Former crash reproducers, rebuilt for this layout from the image with a holder and a waiter:
    // an id length far past the id array (tools must clamp it, not allocate gigabytes), one just past
    // it, and a holder list that leaves the record table.
    const auto live_session = [](Img& img) {
      for (std::uint32_t i = 0; i < img.h().caps.max_sessions; ++i)
        if (shm::state(img.session(i), std::memory_order_relaxed) == shm::SessionState::kLive) return i;
      return 0u;
    };
    {
      Bytes b = queue;
      Img img{b};
      img.session(live_session(img)).id_len = 0x7FFFFFF0u;
      write_seed("id_len_oom.img", b, true);
    }
    {
      Bytes b = queue;
      Img img{b};
      img.session(live_session(img)).id_len = shm::kMaxSessionIdBytes + 1;
      write_seed("id_len_overflow.img", b, true);
    }
    {
      Bytes b = queue;
      Img img{b};
      img.session(live_session(img)).holders_head = img.h().caps.max_clients * img.h().caps.locks_per_client + 3;
      write_seed("snapshot_holders_oob.img", b, true);
    }
  }
  {
    // Not a segment at all: a page of pseudo-random bytes.
    Bytes b(4096);
    std::uint64_t x = 0x9E3779B97F4A7C15ull;
    for (auto& c : b) x ^= x << 13, x ^= x >> 7, x ^= x << 17, c = static_cast<unsigned char>(x);
    write_seed("foreign.img", b, false);
  }
  return g_failures == 0 ? 0 : 1;
}
