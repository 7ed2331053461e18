// sb_python_cycle STORE BATCHES OPS_PER_BATCH: the loop bench_python.py times from Python
// (lock(["cart"]) + get + put of 64 B + unlock, on a cached process lock), here through the C++
// API and through the C API (a waiting lock, and a try-lock first as the module locks), so the
// table shows what the Python layer adds. Prints one JSON object: {"cxx": [ns per op of each
// batch], "c": [...], "c_try": [...]}. Built by python/CMakeLists.txt.
// Process safety: the only client of its session ("cycle-native"); run it alone.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <sessionbroker/client.hpp>
#include <sessionbroker/sessionbroker.h>

namespace {

using namespace sessionbroker;
using Ns = std::chrono::nanoseconds;

const std::string kValue(64, 'v');

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "sb_python_cycle: %s\n", what.c_str());
  std::exit(1);
}

template <class Op>
std::vector<double> batches(int count, int ops, Op op) {
  for (int i = 0; i < ops; ++i) op();  // warm: the process lock is taken once, then cached
  std::vector<double> out;
  for (int b = 0; b < count; ++b) {
    const auto t0 = Clock::now();
    for (int i = 0; i < ops; ++i) op();
    out.push_back(static_cast<double>(std::chrono::duration_cast<Ns>(Clock::now() - t0).count()) / ops);
  }
  return out;
}

std::vector<double> cxx_cycle(Session& s, int count, int ops) {
  return batches(count, ops, [&] {
    auto lock = s.lock({"cart"}, Mode::kExclusive, Deadline::max());
    if (!lock) die(lock.status().to_string());
    auto v = lock->get("cart");
    if (!v || !lock->put("cart", kValue).ok() || !lock->unlock().ok()) die("C++ cycle failed");
  });
}

// try_first: as the Python module locks (a try-lock, then a wait only if busy).
std::vector<double> c_cycle(sb_session* s, int count, int ops, bool try_first) {
  static const char* const names[] = {"cart"};
  static const size_t lens[] = {4};
  return batches(count, ops, [&] {
    sb_lock* l = nullptr;
    char buf[128];
    size_t len = 0;
    int found = 0;
    int rc = try_first ? sb_lock_attrs(s, names, lens, 1, SB_EXCLUSIVE, 0, &l) : SB_BUSY;
    if (rc == SB_BUSY) rc = sb_lock_attrs(s, names, lens, 1, SB_EXCLUSIVE, -1, &l);
    if (rc != SB_OK ||
        sb_get(l, "cart", 4, buf, sizeof buf, &len, &found) != SB_OK ||
        sb_put(l, "cart", 4, kValue.data(), kValue.size()) != SB_OK || sb_unlock(l) != SB_OK)
      die(std::string("C cycle failed: ") + sb_last_error());
  });
}

void print(const char* key, const std::vector<double>& v, bool last) {
  std::printf("\"%s\": [", key);
  for (size_t i = 0; i < v.size(); ++i) std::printf("%s%.2f", i ? ", " : "", v[i]);
  std::printf("]%s", last ? "" : ", ");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) die("usage: sb_python_cycle STORE BATCHES OPS_PER_BATCH");
  const int count = std::atoi(argv[2]), ops = std::atoi(argv[3]);
  if (count <= 0 || ops <= 0) die("BATCHES and OPS_PER_BATCH must be positive");
  std::vector<double> cxx, c, c_try;
  {
    auto client = Client::attach(argv[1]);
    if (!client) die(client.status().to_string());
    auto opened = (*client)->open_or_create("cycle-native");
    if (!opened) die(opened.status().to_string());
    cxx = cxx_cycle(opened->session, count, ops);
  }
  sb_client* client = nullptr;
  sb_session* s = nullptr;
  if (sb_attach(argv[1], &client) != SB_OK || sb_open(client, "cycle-native", 12, &s) != SB_OK) die(sb_last_error());
  c = c_cycle(s, count, ops, false);
  c_try = c_cycle(s, count, ops, true);
  sb_session_free(s);
  sb_client_free(client);
  std::printf("{");
  print("cxx", cxx, false);
  print("c", c, false);
  print("c_try", c_try, true);
  std::printf("}\n");
  return 0;
}
