#include "verify.hpp"

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include <fmt/format.h>

#include "check.hpp"
#include "segment.hpp"
#include "sessionbroker/client.hpp"
#include "blob_store.hpp"
#include "registry.hpp"
#include "value.hpp"

namespace torture {
namespace {

using namespace sessionbroker;
using namespace std::chrono_literals;

struct Entry {
  std::uint64_t token, seq, prev_token, prev_seq, dig;
};
using Key = std::pair<int, int>;  // session, attribute
bool later(std::uint64_t t1, std::uint64_t s1, std::uint64_t t2, std::uint64_t s2) {
  return t1 != t2 ? t1 > t2 : s1 > s2;
}

std::map<Key, std::vector<Entry>> read_logs(const std::string& dir, VerifyResult& r) {
  std::map<Key, std::vector<Entry>> by_attr;
  for (const auto& file : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(file.path());
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string tag;
      int s, a;
      Entry e{};
      if (!(fields >> tag >> s >> a >> e.token >> e.seq >> e.prev_token >> e.prev_seq >> std::hex >> e.dig) || tag != "c")
        continue;  // a line cut by a kill mid-write was never acknowledged
      by_attr[{s, a}].push_back(e);
      ++r.commits_logged;
    }
  }
  for (auto& [key, entries] : by_attr)
    std::sort(entries.begin(), entries.end(), [](const Entry& x, const Entry& y) { return later(y.token, y.seq, x.token, x.seq); });
  return by_attr;
}

// Commit order per attribute: each logged commit replaced a value no older than the commit logged
// before it (else that one was lost), and no (token, seq) appears twice.
void check_order(const std::map<Key, std::vector<Entry>>& logs, VerifyResult& r) {
  for (const auto& [key, entries] : logs) {
    for (std::size_t i = 1; i < entries.size(); ++i) {
      const Entry &prev = entries[i - 1], &cur = entries[i];
      if (cur.token == prev.token && cur.seq == prev.seq) ++r.duplicate_tokens;
      if (later(prev.token, prev.seq, cur.prev_token, cur.prev_seq)) {
        ++r.order_violations;
        r.messages.push_back(fmt::format("t{}.a{}: commit {}.{} replaced {}.{}, older than acknowledged {}.{}", key.first,
                                         key.second, cur.token, cur.seq, cur.prev_token, cur.prev_seq, prev.token, prev.seq));
      }
    }
  }
}

// The final value of each attribute is whole and is the last acknowledged commit or a later one.
void check_final_values(const std::string& segment, const std::map<Key, std::vector<Entry>>& logs, int sessions, int attrs,
                        VerifyResult& r) {
  auto client = Client::attach(segment);
  if (!client) {
    r.messages.push_back("verify: " + client.status().to_string());
    ++r.stuck;
    return;
  }
  for (int s = 0; s < sessions; ++s) {
    auto session = (*client)->open("t" + std::to_string(s));
    auto lock = session ? session->lock_all(Mode::kShared, in(10s)) : Result<SessionLock>(session.status());
    if (!lock) {
      ++r.stuck;
      r.messages.push_back(fmt::format("t{}: final read not granted: {}", s, lock.status().to_string()));
      continue;
    }
    for (int a = 0; a < attrs; ++a) {
      ++r.attrs_checked;
      auto got = lock->get("a" + std::to_string(a));
      auto it = logs.find({s, a});
      const Entry* last = it == logs.end() ? nullptr : &it->second.back();
      if (!got || !got->has_value()) {
        if (last) ++r.lost, r.messages.push_back(fmt::format("t{}.a{}: empty, but {}.{} was acknowledged", s, a, last->token, last->seq));
        continue;
      }
      auto v = decode(**got);
      if (!v) {
        ++r.torn;
        r.messages.push_back(fmt::format("t{}.a{}: final value is torn", s, a));
      } else if (last && later(last->token, last->seq, v->token, v->seq)) {
        ++r.lost;
        r.messages.push_back(fmt::format("t{}.a{}: final {}.{} is older than acknowledged {}.{}", s, a, v->token, v->seq, last->token, last->seq));
      } else if (last && v->token == last->token && v->seq == last->seq && digest(v->payload) != last->dig) {
        ++r.torn;
      }
    }
  }
}

// An etcd store has no segment to check: every session must be free again (a destroy takes each
// one's exclusive lock), which it is not if a dead worker's request or grant were left behind.
void check_store_state(const std::string& store, int sessions, VerifyResult& r) {
  auto client = Client::attach(store);
  if (!client) return r.messages.push_back(client.status().to_string());
  for (int s = 0; s < sessions; ++s) {
    Status st = (*client)->destroy("t" + std::to_string(s), in(10s));
    if (st.code() == ErrorCode::kTimeout) ++r.stuck, r.messages.push_back("t" + std::to_string(s) + " still held or queued");
    else if (!st) r.messages.push_back(st.to_string());
  }
  (void)(*client)->detach();
}

void check_segment_state(const std::string& segment, int sessions, VerifyResult& r) {
  if (segment.starts_with("etcd://")) return check_store_state(segment, sessions, r);
  auto seg = detail::Segment::open(segment);
  if (!seg) return r.messages.push_back(seg.status().to_string());
  detail::Registry(**seg).reclaim_all_dead();  // workers killed in the last moments, if no broker runs
  const auto report = detail::check_segment(**seg);
  r.invariant_violations = report.violations.size();
  for (const auto& v : report.violations) r.messages.push_back(v.invariant + ": " + v.detail);
  if (report.waiters != 0) ++r.stuck, r.messages.push_back(fmt::format("{} waiters left queued", report.waiters));
  auto client = Client::attach(segment);
  for (int s = 0; client && s < sessions; ++s) (void)(*client)->destroy("t" + std::to_string(s), in(10s));
  if (client) (void)(*client)->detach();
  r.leaked_blocks = (*seg)->caps().block_count - detail::BlobStore(**seg).free_blocks();
}

}  // namespace

VerifyResult verify_run(const std::string& segment, const std::string& log_dir, int sessions, int attrs) {
  VerifyResult r;
  const auto logs = read_logs(log_dir, r);
  check_order(logs, r);
  check_final_values(segment, logs, sessions, attrs, r);
  check_segment_state(segment, sessions, r);
  return r;
}

}  // namespace torture
