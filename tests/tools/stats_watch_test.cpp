// sessionctl stats and watch end to end. Every test starts its own session-broker on a private
// segment and makes lock traffic through the public API: this process attaches as a client and
// takes locks, and `sessionctl lock` children queue behind it. Then it runs the real sessionctl:
// `stats` through pipes, `watch` under a pseudo-terminal (forkpty, 80x24) as a person runs it.
//
// Nothing sleeps and no assertion is about time. A waiter is known to be queued when this
// process's revoke callback hears kRequested (the store asks a holder to release only once a
// request is queued behind it); a handoff is known to be done when the waiter prints its token;
// a frame is known to be drawn when its text arrives. Every wait has a generous deadline.
#include <poll.h>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "segment.hpp"
#include "sessionbroker/client.hpp"
#include "subprocess.hpp"
#include "tool_test_util.hpp"

namespace {

using namespace sbtest;
using nlohmann::json;
namespace sb = sessionbroker;

const std::string kCtl = SESSIONCTL_PATH;
const std::string kBroker = SESSION_BROKER_PATH;
constexpr const char* kLeaveAlternateScreen = "\x1b[?1049l";

// ---- sessionctl watch on a pseudo-terminal ----

// A child on the slave side of a new pseudo-terminal of 80x24 (its controlling terminal, so Ctrl-C
// written to the master is SIGINT to it). The test reads everything it draws from the master.
class PtyChild {
 public:
  explicit PtyChild(const std::vector<std::string>& args) {
    std::vector<std::string> all{kCtl};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    winsize size{};
    size.ws_row = 24;
    size.ws_col = 80;
    pid_ = forkpty(&master_, nullptr, nullptr, &size);
    if (pid_ == 0) {
      execv(argv[0], argv.data());
      _exit(127);
    }
  }
  ~PtyChild() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (master_ >= 0) close(master_);
  }
  PtyChild(const PtyChild&) = delete;
  PtyChild& operator=(const PtyChild&) = delete;

  bool started() const { return pid_ > 0 && master_ >= 0; }
  pid_t pid() const { return pid_; }
  const std::string& output() const { return out_; }
  void write_keys(std::string_view keys) { ASSERT_EQ(write(master_, keys.data(), keys.size()), static_cast<ssize_t>(keys.size())); }

  // Reads until the output contains `text` at or after byte `from`; false at EOF or the deadline.
  bool read_until(std::string_view text, Clock::time_point deadline, std::size_t from = 0) {
    while (out_.find(text, from) == std::string::npos)
      if (!read_some(deadline)) return false;
    return true;
  }
  // Reads until the child has closed the terminal (it exited), then reaps it: its exit code, or
  // nullopt if it still runs at the deadline.
  std::optional<int> wait_exit(Clock::time_point deadline) {
    while (read_some(deadline)) {
    }
    if (!eof_) return std::nullopt;
    int status = 0;
    if (waitpid(pid_, &status, 0) != pid_) return std::nullopt;
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  bool read_some(Clock::time_point deadline) {
    if (eof_ || !wait_readable(master_, deadline)) return false;
    char buf[4096];
    const ssize_t n = read(master_, buf, sizeof buf);
    if (n <= 0) {  // EIO once the slave side is closed by the child's exit
      eof_ = true;
      return false;
    }
    out_.append(buf, static_cast<std::size_t>(n));
    return true;
  }

  pid_t pid_ = -1;
  int master_ = -1;
  bool eof_ = false;
  std::string out_;
};

// The frames of a full-screen output: each begins with the cursor-home escape; escape sequences
// and carriage returns removed, split into lines.
std::vector<std::vector<std::string>> frames_of(const std::string& output) {
  static const std::regex kEscape("\x1b\\[[0-9;?]*[A-Za-z]");
  std::vector<std::vector<std::string>> frames;
  std::size_t at = output.find("\x1b[H");
  while (at != std::string::npos) {
    const std::size_t next = output.find("\x1b[H", at + 3);
    std::string text = std::regex_replace(output.substr(at, next - at), kEscape, "");
    std::erase(text, '\r');
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    frames.push_back(std::move(lines));
    at = next;
  }
  return frames;
}

void expect_fits_80x24(const std::vector<std::string>& frame) {
  EXPECT_LE(frame.size(), 24u);
  for (const auto& line : frame) EXPECT_LE(line.size(), 80u) << "line too wide: '" << line << "'";
}

// ---- Prometheus text ----

struct Sample {
  std::string name, labels;
  double value;
};

// Parses one sample line `name{labels} value`; nullopt if the line has another shape.
std::optional<Sample> parse_sample(const std::string& line) {
  static const std::regex kSample(R"(([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+))");
  std::smatch m;
  if (!std::regex_match(line, m, kSample)) return std::nullopt;
  const std::string v = m[3];
  char* end = nullptr;
  const double value = v == "+Inf" ? HUGE_VAL : std::strtod(v.c_str(), &end);
  if (v != "+Inf" && (end == v.c_str() || *end != '\0')) return std::nullopt;
  return Sample{m[1], m[2], value};
}

std::string label(const std::string& labels, const std::string& key) {
  const std::regex re(key + R"(="([^"]*)\")");
  std::smatch m;
  return std::regex_search(labels, m, re) ? std::string(m[1]) : std::string();
}

// ---- fixture ----

class StatsWatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    segment_ = unique_segment("stats");
    broker_.emplace(Child::spawn(kBroker, {"--segment", segment_, "--remove-on-exit", "--ready-fd", "1"}));
    ASSERT_EQ(broker_->out().next(soon()), "ready") << broker_->err().rest(soon()).value_or("");
    auto client = sb::Client::attach(segment_);
    ASSERT_TRUE(client) << client.status().to_string();
    client_ = std::move(*client);
    client_->on_revoke([this](const sb::RevokeEvent& e) {
      if (e.kind != sb::RevokeEvent::Kind::kRequested) return;
      std::lock_guard g(mu_);
      ++revoke_requests_;
      cv_.notify_all();
    });
  }

  void TearDown() override {
    if (client_) {
      EXPECT_TRUE(client_->detach());
    }
    client_.reset();
    if (broker_) {
      kill(broker_->pid(), SIGTERM);
      EXPECT_EQ(broker_->wait(soon()), 0);
    }
    sb::detail::Segment::remove(segment_);  // in case the broker could not
  }

  RunResult ctl(std::vector<std::string> args) {
    args.insert(args.end(), {"--segment", segment_});
    return run(kCtl, args);
  }

  json stats_json() {
    RunResult r = ctl({"stats", "--json"});
    EXPECT_EQ(r.code, 0) << r.err;
    return json::parse(r.out);
  }

  // `n` process-lock grants to this process: lock, commit nothing, give the cached lock back.
  void take_locks(const std::string& id, int n) {
    auto session = client_->create(id);
    ASSERT_TRUE(session) << session.status().to_string();
    for (int i = 0; i < n; ++i) {
      auto lock = session->lock_all(sb::Mode::kExclusive, sb::in(10s));
      ASSERT_TRUE(lock) << lock.status().to_string();
      ASSERT_TRUE(lock->unlock());
      ASSERT_TRUE(session->release(sb::in(10s)));
    }
  }

  // This process holds `id` (a thread lock, so the process lock cannot be given back) and a
  // `sessionctl lock` child is queued behind it when this returns.
  struct Contention {
    sb::Session session;
    sb::SessionLock lock;
    Child waiter;
  };
  std::optional<Contention> contend(const std::string& id) {
    auto session = client_->create(id);
    if (!session) return std::nullopt;
    auto lock = session->lock_all(sb::Mode::kExclusive, sb::in(10s));
    if (!lock) return std::nullopt;
    const int requests_before = revoke_requests();
    Contention c{*session, std::move(*lock),
                 Child::spawn(kCtl, {"lock", id, "--timeout", "60s", "--segment", segment_}, /*keep_stdin=*/true)};
    std::unique_lock g(mu_);
    if (!cv_.wait_until(g, soon(), [&] { return revoke_requests_ > requests_before; })) return std::nullopt;
    return std::optional<Contention>(std::move(c));
  }

  // Lets the waiter of `c` have the lock (a handoff) and waits until it has it.
  static void hand_over(Contention& c) {
    ASSERT_TRUE(c.lock.unlock());  // the revoke request is pending: the process lock goes now
    const auto line = c.waiter.out().next(soon());
    ASSERT_TRUE(line && line->rfind("token=", 0) == 0) << line.value_or("(nothing)");
  }

  static void finish(Contention& c) {
    c.waiter.close_stdin();
    EXPECT_EQ(c.waiter.wait(soon()), 0);
  }

  int revoke_requests() {
    std::lock_guard g(mu_);
    return revoke_requests_;
  }

  std::string segment_;
  std::optional<Child> broker_;
  std::unique_ptr<sb::Client> client_;
  std::mutex mu_;
  std::condition_variable cv_;
  int revoke_requests_ = 0;
};

// ---- stats ----

TEST_F(StatsWatchTest, StatsJsonCountsGrantsAndFillsTheWaitHistogram) {
  take_locks("user:1", 5);
  const json doc = stats_json();
  for (const char* key : {"segment", "broker_pid", "next_token", "repairs", "clients_live", "clients_max",
                          "sessions_live", "sessions_max", "memory", "counters", "latency", "clients", "top_sessions"})
    EXPECT_TRUE(doc.contains(key)) << key;
  EXPECT_EQ(doc["segment"], segment_);
  EXPECT_EQ(doc["broker_pid"], broker_->pid());
  EXPECT_GE(doc["counters"]["grants"].get<std::uint64_t>(), 5u);
  const json& wait = doc["latency"]["wait"];
  EXPECT_GE(wait["count"].get<std::uint64_t>(), 5u);
  ASSERT_FALSE(wait["buckets"].empty());
  std::uint64_t in_buckets = 0;
  for (const auto& b : wait["buckets"]) in_buckets += b["count"].get<std::uint64_t>();
  EXPECT_EQ(in_buckets, wait["count"].get<std::uint64_t>());
  EXPECT_GT(wait["p50_ns"].get<std::uint64_t>(), 0u);
  EXPECT_LE(wait["p50_ns"].get<std::uint64_t>(), wait["p99_ns"].get<std::uint64_t>());

  ASSERT_EQ(doc["clients"].size(), 1u);  // this process; sessionctl stats does not attach
  const json& me = doc["clients"][0];
  EXPECT_EQ(me["pid"], getpid());
  EXPECT_EQ(me["state"], "live");
  EXPECT_GE(me["counters"]["grants"].get<std::uint64_t>(), 5u);
  EXPECT_EQ(doc["clients_live"], 1);
  EXPECT_EQ(doc["sessions_live"], 1);
}

TEST_F(StatsWatchTest, QueuedWaiterShowsInTopSessionsThenAsAHandoff) {
  auto c = contend("busy:1");
  ASSERT_TRUE(c) << "the waiter did not queue";
  take_locks("quiet:1", 1);  // a session nobody waits for ranks below

  json doc = stats_json();
  ASSERT_FALSE(doc["top_sessions"].empty());
  const json& top = doc["top_sessions"][0];
  EXPECT_EQ(top["id"], "busy:1");
  EXPECT_EQ(top["mode"], "exclusive");
  EXPECT_EQ(top["holders"], 1);
  EXPECT_EQ(top["queue"], 1);
  EXPECT_GE(top["waits"].get<std::uint64_t>(), 1u);
  bool waiter_listed = false;
  for (const auto& cl : doc["clients"])
    if (cl["pid"] == c->waiter.pid()) waiter_listed = cl["waiting"] == 1 && cl["held"] == 0;
  EXPECT_TRUE(waiter_listed) << doc["clients"].dump();
  const auto handoffs_before = doc["counters"]["handoffs"].get<std::uint64_t>();

  hand_over(*c);
  doc = stats_json();
  EXPECT_GE(doc["counters"]["handoffs"].get<std::uint64_t>(), handoffs_before + 1);
  EXPECT_GE(doc["counters"]["revokes"].get<std::uint64_t>(), 1u);  // this process gave its lock back on request
  EXPECT_GE(doc["latency"]["handoff"]["count"].get<std::uint64_t>(), 1u);
  finish(*c);
}

TEST_F(StatsWatchTest, PrometheusOutputParsesAndItsHistogramsAreCumulative) {
  take_locks("user:1", 3);
  auto c = contend("busy:1");
  ASSERT_TRUE(c);
  hand_over(*c);
  RunResult r = ctl({"stats", "--prometheus"});
  ASSERT_EQ(r.code, 0) << r.err;

  std::map<std::string, std::string> type;  // family -> counter | gauge | histogram
  std::map<std::string, double> value;      // family, or family_count / _sum, -> value (unlabelled by client)
  std::map<std::string, std::vector<std::pair<std::string, double>>> buckets;  // family -> (le, count)
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("# HELP ", 0) == 0) continue;
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream t(line.substr(7));
      std::string family, kind;
      t >> family >> kind;
      EXPECT_TRUE(kind == "counter" || kind == "gauge" || kind == "histogram") << line;
      EXPECT_FALSE(type.count(family)) << "family declared twice: " << line;
      type[family] = kind;
      continue;
    }
    const auto s = parse_sample(line);
    ASSERT_TRUE(s) << "not a sample line: '" << line << "'";
    EXPECT_EQ(label(s->labels, "segment"), segment_) << line;
    std::string family = s->name;
    for (const char* suffix : {"_bucket", "_sum", "_count"})
      if (!type.count(family) && family.ends_with(suffix)) family.resize(family.size() - std::strlen(suffix));
    ASSERT_TRUE(type.count(family)) << "sample before its # TYPE line: " << line;
    if (type[family] == "counter") {
      EXPECT_TRUE(family.ends_with("_total")) << line;
    }
    if (s->name.ends_with("_bucket")) buckets[family].emplace_back(label(s->labels, "le"), s->value);
    if (label(s->labels, "pid").empty()) value[s->name] = s->value;
  }

  EXPECT_GE(value["sessionbroker_grants_total"], 4);
  EXPECT_GE(value["sessionbroker_handoffs_total"], 1);
  for (const char* gauge : {"sessionbroker_clients", "sessionbroker_sessions", "sessionbroker_memory_blocks_used",
                            "sessionbroker_memory_blocks_total", "sessionbroker_locks_waiting"})
    EXPECT_EQ(type[gauge], "gauge") << gauge;
  EXPECT_EQ(value["sessionbroker_sessions"], 2);
  for (const char* h : {"sessionbroker_lock_wait_seconds", "sessionbroker_lock_handoff_seconds"}) {
    EXPECT_EQ(type[h], "histogram") << h;
    const auto& bs = buckets[h];
    ASSERT_GE(bs.size(), 2u) << h;
    for (std::size_t i = 1; i < bs.size(); ++i) {
      EXPECT_LE(bs[i - 1].second, bs[i].second) << h << " le=" << bs[i].first << ": buckets must be cumulative";
      if (i + 1 < bs.size()) {
        EXPECT_LT(std::stod(bs[i - 1].first), std::stod(bs[i].first)) << h;
      }
    }
    EXPECT_EQ(bs.back().first, "+Inf") << h;
    EXPECT_EQ(bs.back().second, value[std::string(h) + "_count"]) << h;
    EXPECT_GE(value[std::string(h) + "_count"], 1) << h;
    EXPECT_GT(value[std::string(h) + "_sum"], 0) << h;
  }
  finish(*c);
}

// ---- watch ----

// What every full-screen run must show: a frame with the contended session, nothing wider or
// taller than the terminal, and the terminal given back (the alternate screen left) at the end.
void expect_clean_full_screen_run(PtyChild& watch) {
  const auto frames = frames_of(watch.output());
  ASSERT_FALSE(frames.empty()) << watch.output();
  for (const auto& f : frames) expect_fits_80x24(f);
  EXPECT_TRUE(watch.output().ends_with(kLeaveAlternateScreen)) << "the alternate screen was not left last";
}

class StatsWatchFullScreenTest : public StatsWatchTest, public ::testing::WithParamInterface<const char*> {};

// The ways a person ends watch: q, Ctrl-C typed (the terminal's SIGINT), SIGINT and SIGTERM sent.
TEST_P(StatsWatchFullScreenTest, DrawsTheContendedSessionAndExitsCleanly) {
  auto c = contend("contended:7");
  ASSERT_TRUE(c);
  PtyChild watch({"watch", "--interval", "100ms", "--segment", segment_});
  ASSERT_TRUE(watch.started());
  ASSERT_TRUE(watch.read_until("contended:7", soon())) << watch.output();
  ASSERT_TRUE(watch.read_until("\x1b[H", soon(), watch.output().size())) << "no frame after the first";

  const std::string how = GetParam();
  if (how == "q") watch.write_keys("q");
  if (how == "ctrl-c") watch.write_keys("\x03");
  if (how == "SIGINT") kill(watch.pid(), SIGINT);
  if (how == "SIGTERM") kill(watch.pid(), SIGTERM);
  EXPECT_EQ(watch.wait_exit(Clock::now() + 10s), 0);
  expect_clean_full_screen_run(watch);
  const auto frames = frames_of(watch.output());
  ASSERT_FALSE(frames.empty());
  EXPECT_TRUE(frames.front()[0].rfind("sessionbroker " + segment_, 0) == 0) << frames.front()[0];

  hand_over(*c);
  finish(*c);
}

INSTANTIATE_TEST_SUITE_P(EndedBy, StatsWatchFullScreenTest, ::testing::Values("q", "ctrl-c", "SIGINT", "SIGTERM"),
                         [](const auto& info) { return std::string(info.param == std::string("ctrl-c") ? "CtrlC" : info.param); });

TEST_F(StatsWatchTest, WatchOnceWithoutATerminalPrintsOnePlainFrame) {
  auto c = contend("contended:8");
  ASSERT_TRUE(c);
  RunResult r = ctl({"watch", "--once", "--interval", "50ms"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << "escape sequence in plain output";
  EXPECT_EQ(r.out.rfind("sessionbroker " + segment_, 0), 0u) << r.out;
  EXPECT_EQ(r.out.find("sessionbroker ", 1), std::string::npos) << "more than one frame:\n" << r.out;
  EXPECT_NE(r.out.find("contended:8"), std::string::npos) << r.out;
  std::istringstream in(r.out);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  expect_fits_80x24(lines);
  hand_over(*c);
  finish(*c);
}

TEST(StatsWatchNoBroker, MissingSegmentExits1) {
  for (const char* cmd : {"stats", "watch"}) {
    RunResult r = run(kCtl, {cmd, "--segment", unique_segment("stats")});
    EXPECT_EQ(r.code, 1) << cmd;
    EXPECT_EQ(r.err.rfind("sessionctl: no such segment:", 0), 0u) << r.err;
  }
}

}  // namespace
