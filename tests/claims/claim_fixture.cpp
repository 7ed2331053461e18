#include "claim_fixture.hpp"

#include <unistd.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <optional>
#include <ostream>
#include <sstream>

#ifdef SESSIONBROKER_WITH_ETCD
#include "etcd/etcd_backend.hpp"
#include "etcd_cluster.hpp"
#endif

namespace sbtest {

std::string to_string(StoreKind k) { return k == StoreKind::kShm ? "shm" : "etcd"; }
void PrintTo(StoreKind k, std::ostream* os) { *os << to_string(k); }

namespace {
Mode mode_of(sessionbroker::shm::LockMode m) {
  return m == sessionbroker::shm::LockMode::kExclusive ? Mode::kExclusive : Mode::kShared;
}
}  // namespace

#ifdef SESSIONBROKER_WITH_ETCD
namespace etcd = sessionbroker::detail::etcd;

// The key space is read by a process of its own, never by the test process: Debian's gRPC has no
// fork support, and a test child forked while a gRPC thread of its parent held an allocator lock
// (the sanitizers' own, under ASan) deadlocked in its first allocation. The reader is forked before
// this process first uses gRPC (it never does), answers one request line with reply lines, and is
// killed at exit. Session ids in the tests have no spaces.
//   snap PREFIX ID          -> "none" | "ok TTL_MS NHOLDERS NQUEUE", then "h PID X|S TOKEN 0|1" per
//                              holder and "q PID X|S TOKEN" per waiter, in queue order
//   break PREFIX ID TOKEN   -> "1" | "0"  (deletes the queue key of that token)
//   clear PREFIX            -> "ok"       (deletes every key under PREFIX/)
struct ClaimFixture::EtcdView {
  std::string prefix;
};

namespace {
EtcdCluster* cluster() {
  static std::unique_ptr<EtcdCluster> c = [] {
    std::string error;
    auto started = EtcdCluster::start(&error);
    if (!started) ADD_FAILURE() << "etcd cluster: " << error;
    return started;
  }();
  return c.get();
}

std::vector<std::string> words(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

std::vector<std::string> serve_snap(etcd::Client& c, const etcd::Keys& keys, const std::string& id) {
  auto info = etcd::read_session(c, keys, id);
  if (!info) return {"none"};
  // The pid of each process lease, from the client keys of every host.
  auto pids = etcd::registered_pids(c, keys);
  std::map<std::int64_t, pid_t> pid_of;
  if (pids) pid_of.insert(pids->begin(), pids->end());
  std::vector<std::string> holders, queue;
  bool any_exclusive_after = false;
  for (auto it = info->queue.rbegin(); it != info->queue.rend(); ++it) {
    const char* m = it->exclusive ? "X" : "S";
    const pid_t pid = pid_of.count(it->lease) ? pid_of[it->lease] : 0;
    if (it->granted) {
      // A holder is asked back by any later incompatible request.
      const bool revoke = it->exclusive ? it != info->queue.rbegin() : any_exclusive_after;
      holders.insert(holders.begin(), "h " + std::to_string(pid) + " " + m + " " + std::to_string(it->token) + (revoke ? " 1" : " 0"));
    } else {
      queue.insert(queue.begin(), "q " + std::to_string(pid) + " " + m + " " + std::to_string(it->token));
    }
    any_exclusive_after = any_exclusive_after || it->exclusive;
  }
  std::vector<std::string> out{"ok " + std::to_string(info->value.ttl_ms) + " " + std::to_string(holders.size()) + " " +
                               std::to_string(queue.size())};
  out.insert(out.end(), holders.begin(), holders.end());
  out.insert(out.end(), queue.begin(), queue.end());
  return out;
}

bool serve_break(etcd::Client& c, const etcd::Keys& keys, const std::string& id, std::int64_t token) {
  const std::string q = etcd::Keys::queue_prefix(keys.session(id));
  auto r = c.range(q, etcd::prefix_end(q));
  if (!r) return false;
  for (const auto& kv : r->kvs()) {
    if (kv.create_revision() != token) continue;
    etcdserverpb::TxnRequest t;
    auto* cmp = t.add_compare();
    cmp->set_key(kv.key());
    cmp->set_target(etcdserverpb::Compare::CREATE);
    cmp->set_create_revision(kv.create_revision());
    t.add_success()->mutable_request_delete_range()->set_key(kv.key());
    auto done = c.txn(t);
    return done && done->succeeded();
  }
  return false;
}

int reader_main(const std::vector<std::string>& endpoints, Channel& ch) {
  auto c = etcd::Client::connect(endpoints);
  if (!c) return 10;
  while (auto line = ch.receive(std::chrono::hours(24))) {
    const auto w = words(*line);
    if (w.size() == 3 && w[0] == "snap") {
      for (const auto& out : serve_snap(**c, etcd::Keys{w[1]}, w[2])) ch.send(out);
    } else if (w.size() == 4 && w[0] == "break") {
      ch.send(serve_break(**c, etcd::Keys{w[1]}, w[2], std::stoll(w[3])) ? "1" : "0");
    } else if (w.size() == 2 && w[0] == "clear") {
      (void)(*c)->delete_range(w[1] + "/", etcd::prefix_end(w[1] + "/"));
      ch.send("ok");
    } else {
      ch.send("bad request");
    }
  }
  return 0;
}

// The reader, and one request at a time (its reply lines are read whole before the next).
class Reader {
 public:
  std::vector<std::string> ask(const std::string& request) {
    std::lock_guard lk(mu_);
    if (!child_) {
      const std::vector<std::string> endpoints = cluster()->endpoints();
      child_.emplace(Child::spawn([endpoints](Channel& ch) { return reader_main(endpoints, ch); }));
    }
    child_->channel().send(request);
    std::vector<std::string> out;
    auto first = child_->channel().receive(30s);
    if (!first) return out;
    out.push_back(*first);
    const auto w = words(*first);
    if (w.size() == 4 && w[0] == "ok") {
      const std::size_t more = std::stoul(w[2]) + std::stoul(w[3]);
      for (std::size_t i = 0; i < more; ++i) {
        auto next = child_->channel().receive(30s);
        if (!next) return {};
        out.push_back(*next);
      }
    }
    return out;
  }

 private:
  std::mutex mu_;
  std::optional<Child> child_;
};

Reader& reader() {
  static Reader r;
  return r;
}
}  // namespace
#else
struct ClaimFixture::EtcdView {};
#endif

void ClaimFixture::SetUp() {
  if (kind_ == StoreKind::kShm) return create(small_caps());
#ifdef SESSIONBROKER_WITH_ETCD
  EtcdCluster* c = cluster();
  ASSERT_NE(c, nullptr);
  static int counter = 0;
  const std::string prefix = "sbtest" + std::to_string(getpid()) + "x" + std::to_string(counter++);
  name_ = c->address(prefix);
  etcd_ = std::make_shared<EtcdView>(EtcdView{prefix});
#else
  GTEST_SKIP() << "built without the etcd backend";
#endif
}

void ClaimFixture::create(const sessionbroker::shm::Capacities& caps) {
  if (!name_.empty()) TearDown();
  std::string tag = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  std::replace(tag.begin(), tag.end(), '/', '-');  // a parameterised test's name has one
  name_ = unique_segment_name(tag);
  sessionbroker::detail::CreateOptions opts;
  opts.caps = caps;
  auto seg = sessionbroker::detail::Segment::create(name_, opts);
  ASSERT_TRUE(seg) << seg.status().to_string();
  seg_ = std::move(*seg);
  bind_roles();
}

void ClaimFixture::bind_roles() { RolePointers{registry_, locks_, blobs_, admin_}.bind(*seg_); }
void ClaimFixture::reset_roles() { RolePointers{registry_, locks_, blobs_, admin_}.reset(); }

void ClaimFixture::TearDown() {
  if (kind_ == StoreKind::kShm) {
    reset_roles();
    seg_.reset();
    if (!name_.empty()) sessionbroker::detail::Segment::remove(name_);
    return;
  }
#ifdef SESSIONBROKER_WITH_ETCD
  if (etcd_) (void)reader().ask("clear " + etcd_->prefix);
#endif
}

bool ClaimFixture::break_lock(const std::string& id, std::uint64_t token) {
  if (kind_ == StoreKind::kShm) {
    for (std::uint32_t r = 0; r < seg_->record_count(); ++r)
      if (locks_->break_lock(r, token)) return true;
    return false;
  }
#ifdef SESSIONBROKER_WITH_ETCD
  return reader().ask("break " + etcd_->prefix + " " + id + " " + std::to_string(token)) == std::vector<std::string>{"1"};
#endif
  (void)id;
  return false;
}

std::optional<Snapshot> ClaimFixture::snap(const std::string& id) {
  Snapshot out;
  if (kind_ == StoreKind::kShm) {
    auto ref = registry_->open_session(id);
    if (!ref) return std::nullopt;
    auto s = admin_->snapshot(ref->slot);
    if (!s) return std::nullopt;
    for (auto& h : s->holders) out.holders.push_back({h.pid, mode_of(h.mode), h.token, h.revoke});
    for (auto& w : s->queue) out.queue.push_back({w.pid, mode_of(w.mode), w.ticket});
    out.mode = mode_of(s->mode);
    out.ttl_ms = s->ttl_ms;
    out.grants = s->grants;
    out.waits = s->waits;
    return out;
  }
#ifdef SESSIONBROKER_WITH_ETCD
  const auto lines = reader().ask("snap " + etcd_->prefix + " " + id);
  if (lines.empty() || lines[0] == "none") return std::nullopt;
  out.ttl_ms = std::stoull(words(lines[0]).at(1));
  for (std::size_t i = 1; i < lines.size(); ++i) {
    const auto w = words(lines[i]);
    const pid_t pid = static_cast<pid_t>(std::stol(w.at(1)));
    const Mode m = w.at(2) == "X" ? Mode::kExclusive : Mode::kShared;
    const std::uint64_t token = std::stoull(w.at(3));
    if (w[0] == "h") {
      out.holders.push_back({pid, m, token, w.at(4) == "1"});
      out.mode = m;
    } else {
      out.queue.push_back({pid, m, token});
    }
  }
  return out;
#else
  return std::nullopt;
#endif
}

}  // namespace sbtest
