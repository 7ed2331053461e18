#include "worker.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <random>
#include <vector>

#include <fmt/format.h>

#include "sessionbroker/client.hpp"
#include "sessionbroker/shm/futex.hpp"
#include "value.hpp"

namespace torture {
namespace {

using namespace sessionbroker;
using namespace std::chrono_literals;

std::string attr_name(int a) { return "a" + std::to_string(a); }
std::string session_name(int s) { return "t" + std::to_string(s); }

class Worker {
 public:
  Worker(const WorkerConfig& cfg, Shared* shared)
      : cfg_(cfg), sh_(shared), rng_(cfg.seed), log_fd_(::open(cfg.log_path.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0600)) {}
  ~Worker() { ::close(log_fd_); }

  int run() {
    auto client = attach();
    if (!client) return 20;
    std::vector<Session> sessions;
    for (int s = 0; s < cfg_.sessions; ++s) {
      auto h = client->open(session_name(s));
      if (!h) return 21;
      sessions.push_back(*h);
    }
    while (sh_->stop.load(std::memory_order_relaxed) == 0) {
      const int s = pick(cfg_.sessions);
      auto& session = sessions[static_cast<std::size_t>(s)];
      if (cfg_.sabotage && pick(4) == 0 ? !stale_write_round(session, s) : !one_round(session, s)) return 22;
    }
    return 0;
  }

 private:
  // Attach may find the client table full of workers killed a moment ago: their slots come back
  // once reclaimed (attach itself reclaims dead clients when the table is full).
  std::unique_ptr<Client> attach() {
    for (int attempt = 0; attempt < 100; ++attempt) {
      auto c = Client::attach(cfg_.segment);
      if (c) return std::move(*c);
      if (c.code() != ErrorCode::kCapacityExceeded) break;
    }
    return nullptr;
  }

  int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

  // One lock / read / maybe write / unlock cycle. False only on an unexpected library error.
  bool one_round(Session& session, int s) {
    std::vector<int> attrs{pick(cfg_.attrs)};
    if (pick(2) == 0) attrs.push_back(pick(cfg_.attrs));
    std::vector<std::string> names;
    for (int a : attrs) names.push_back(attr_name(a));
    const bool write = pick(4) != 0;
    auto lock = session.lock(names, write ? Mode::kExclusive : Mode::kShared, in(10s));
    if (!lock) {
      if (lock.code() == ErrorCode::kTimeout) return sh_->lock_timeouts++, true;
      return report(lock.status());
    }
    for (std::size_t i = 0; i < attrs.size(); ++i) {
      auto current = read_and_check(*lock, s, attrs[i]);
      if (!current) return false;
      if (!write) continue;
      Value v{cfg_.id, ++seq_, lock->token(), current->token, current->seq, payload()};
      if (Status st = lock->put(names[i], encode(v)); !st) return report(st);
      pending_.push_back({s, attrs[i], v});
    }
    if (pick(8) == 0) hold_briefly();  // widen the window in which a kill finds us holding
    if (write) {
      Status st = lock->commit();
      if (!st) {
        pending_.clear();
        return st.code() == ErrorCode::kStaleToken || report(st);
      }
      acknowledge();
    }
    if (Status st = lock->unlock(); !st && st.code() != ErrorCode::kStaleToken) return report(st);
    if (pick(16) == 0) (void)session.release(in(10s));
    return true;
  }

  // Self-test of the verifier: read under one lock, commit a newer value under a second, then write
  // under a third as if the first read were still current, as buggy app code would. The second
  // commit is lost every time, not only when another worker's commit happens to fall in between
  // (which a short or slow run may never see), so the run must fail however few rounds it completes.
  bool stale_write_round(Session& session, int s) {
    const int a = pick(cfg_.attrs);
    std::optional<Value> old;
    {
      auto r = session.lock({attr_name(a)}, Mode::kShared, in(10s));
      if (!r) return r.code() == ErrorCode::kTimeout || report(r.status());
      old = read_and_check(*r, s, a);
      if (!old) return false;
    }
    for (const bool stale : {false, true}) {
      auto w = session.lock({attr_name(a)}, Mode::kExclusive, in(10s));
      if (!w) return w.code() == ErrorCode::kTimeout || report(w.status());
      const std::optional<Value> base = stale ? old : read_and_check(*w, s, a);
      if (!base) return false;
      Value v{cfg_.id, ++seq_, w->token(), base->token, base->seq, payload()};
      if (Status st = w->put(attr_name(a), encode(v)); !st) return report(st);
      pending_.push_back({s, a, v});
      if (Status st = w->commit(); !st) {
        pending_.clear();
        return st.code() == ErrorCode::kStaleToken || report(st);
      }
      acknowledge();
    }
    return true;
  }

  // The committed value must be whole and no older than the newest acknowledged commit.
  std::optional<Value> read_and_check(SessionLock& lock, int s, int a) {
    auto got = lock.get(attr_name(a));
    if (!got) {
      report(got.status());
      return std::nullopt;
    }
    sh_->reads++;
    if (!got->has_value()) {
      if (sh_->acked[s][a].token.load() != 0) sh_->lost++;
      return Value{};
    }
    auto v = decode(**got);
    if (!v) {
      sh_->torn++;
      return Value{};
    }
    const Value acked{0, sh_->acked[s][a].seq.load(), sh_->acked[s][a].token.load(), 0, 0, {}};
    if (acked.after(*v)) sh_->lost++;
    return v;
  }

  // The commit is acknowledged: log it (so a kill from here on cannot lose the fact), then
  // publish it to later readers, all before the lock is let go.
  void acknowledge() {
    std::string lines;
    for (auto& p : pending_) lines += commit_line(p.session, p.attr, p.value);
    (void)!::write(log_fd_, lines.data(), lines.size());
    for (auto& p : pending_) {
      sh_->acked[p.session][p.attr].token.store(p.value.token);
      sh_->acked[p.session][p.attr].seq.store(p.value.seq);
      sh_->commits++;
    }
    pending_.clear();
  }

  std::string payload() {
    const int len = std::uniform_int_distribution<int>(0, 2000)(rng_);
    std::string p(static_cast<std::size_t>(len), '\0');
    for (auto& ch : p) ch = static_cast<char>('a' + pick(26));
    return p;
  }

  void hold_briefly() {
    std::uint32_t word = 0;
    sessionbroker::shm::futex_wait(word, 0, sessionbroker::shm::Clock::now() + std::chrono::microseconds(pick(2000)));
  }

  bool report(const Status& st) {
    sh_->errors++;
    fmt::print(stderr, "worker {}: {}\n", cfg_.id, st.to_string());
    return false;
  }

  struct Pending {
    int session, attr;
    Value value;
  };
  const WorkerConfig& cfg_;
  Shared* sh_;
  std::mt19937_64 rng_;
  int log_fd_;
  std::uint64_t seq_ = 0;
  std::vector<Pending> pending_;
};

}  // namespace

int run_worker(const WorkerConfig& cfg, Shared* shared) { return Worker(cfg, shared).run(); }

}  // namespace torture
