#include "env.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include <unistd.h>

namespace sbbench {

double clock_overhead_ns() {
  std::vector<double> v;
  for (int i = 0; i < 20001; ++i) {
    const auto t0 = now_ns();
    v.push_back(static_cast<double>(now_ns() - t0));
  }
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

Options parse_options(int& argc, char** argv) {
  Options o;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") o.quick = true;
    else if (a == "--out" && i + 1 < argc) o.out = argv[++i];
    else if (a.rfind("--out=", 0) == 0) o.out = a.substr(6);
    else argv[kept++] = argv[i];
  }
  argc = kept;
  return o;
}

std::string name_prefix() {
  static const std::string prefix = [] {
    const char* p = std::getenv("SBBENCH_PREFIX");
    return p && *p ? std::string(p) : "sbbench-" + std::to_string(getpid());
  }();
  return prefix;
}

namespace {
bool g_own_tmp_dir = false;
}  // namespace

const std::string& tmp_dir() {
  static const std::string dir = [] {
    if (const char* t = std::getenv("SBBENCH_TMP"); t && *t) return std::string(t);
    g_own_tmp_dir = true;
    char tmpl[] = "/tmp/sbbench-XXXXXX";
    if (!mkdtemp(tmpl)) {
      std::perror("mkdtemp");
      std::exit(1);
    }
    return std::string(tmpl);
  }();
  return dir;
}

void remove_own_tmp_dir() {
  if (!g_own_tmp_dir) return;
  std::error_code ec;
  std::filesystem::remove_all(tmp_dir(), ec);
}

ScopedSegment::ScopedSegment(const std::string& what, const sessionbroker::shm::Capacities& c)
    : name_(name_prefix() + "-" + what) {
  sessionbroker::detail::CreateOptions opts;
  opts.caps = c;
  auto seg = sessionbroker::detail::Segment::create(name_, opts);
  if (!seg) {
    std::fprintf(stderr, "cannot create segment %s: %s\n", name_.c_str(), seg.status().to_string().c_str());
    std::exit(1);
  }
  seg_ = std::move(*seg);
}

ScopedSegment::~ScopedSegment() {
  seg_.reset();
  sessionbroker::detail::Segment::remove(name_);
}

sessionbroker::shm::Capacities caps(std::uint32_t clients, std::uint32_t sessions, std::uint64_t attr_bytes,
                                    std::uint32_t max_value) {
  sessionbroker::shm::Capacities c{};
  c.max_clients = clients;
  c.locks_per_client = 64;
  c.max_sessions = sessions;
  c.block_count = static_cast<std::uint32_t>(std::max<std::uint64_t>(attr_bytes / sessionbroker::shm::kBlockBytes, 64));
  c.max_value_bytes = static_cast<std::uint32_t>(
      std::min<std::uint64_t>(max_value, std::uint64_t{c.block_count} * sessionbroker::shm::kBlockPayload));
  return c;
}

}  // namespace sbbench
