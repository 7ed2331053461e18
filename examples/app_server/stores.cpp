#include "stores.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <fmt/format.h>

namespace app {
namespace {

using namespace std::chrono_literals;
using sessionbroker::Mode;

constexpr auto kLockTimeout = 5s;  // far above any wait this demo should see
// A session file is one fixed-size record, read and written with one pread/pwrite each, so a
// reader sees one writer's whole record (Linux serialises them per file): what it loses, it loses
// to the read-modify-write race alone, not to torn records.
constexpr std::size_t kRecordBytes = 512;

std::string file_of(const std::string& dir, int user) { return fmt::format("{}/user-{}.session", dir, user); }

struct FileSession {
  Cart cart;
  long views = 0;
};

std::optional<FileSession> load(int fd) {
  char buf[kRecordBytes];
  if (pread(fd, buf, sizeof buf, 0) != static_cast<ssize_t>(sizeof buf)) return std::nullopt;
  const std::string_view text(buf, strnlen(buf, sizeof buf));
  const auto nl = text.find('\n');
  if (nl == std::string_view::npos) return FileSession{};
  return FileSession{Cart::parse(text.substr(0, nl)), parse_views(text.substr(nl + 1))};
}

bool save(int fd, const FileSession& s) {
  char buf[kRecordBytes] = {};
  const std::string text = s.cart.serialize() + "\n" + serialize_views(s.views);
  if (text.size() >= sizeof buf) return false;
  std::memcpy(buf, text.data(), text.size());
  return pwrite(fd, buf, sizeof buf, 0) == static_cast<ssize_t>(sizeof buf);
}

std::string errno_text(const std::string& what) { return fmt::format("{}: {}", what, std::strerror(errno)); }

}  // namespace

// ---- FileStore ----

bool FileStore::create(const std::string& dir, int users, std::string& error) {
  for (int u = 0; u < users; ++u) {
    const int fd = ::open(file_of(dir, u).c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    const bool ok = fd >= 0 && save(fd, FileSession{});
    if (fd >= 0) close(fd);
    if (!ok) return error = errno_text(file_of(dir, u)), false;
  }
  return true;
}

std::unique_ptr<FileStore> FileStore::open(const std::string& dir, int users, std::string& error) {
  std::vector<int> fds;
  for (int u = 0; u < users; ++u) {
    const int fd = ::open(file_of(dir, u).c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      error = errno_text(file_of(dir, u));
      for (int f : fds) close(f);
      return nullptr;
    }
    fds.push_back(fd);
  }
  return std::unique_ptr<FileStore>(new FileStore(std::move(fds)));
}

FileStore::~FileStore() {
  for (int fd : fds_) close(fd);
}

std::optional<std::string> FileStore::serve(const Request& r, Tally& tally) {
  const int fd = fds_[static_cast<std::size_t>(r.user)];
  auto s = load(fd);  // the whole session, at the start of the request
  if (!s) return errno_text("read session file");
  if (r.kind == Kind::kAddToCart) ++s->cart.quantity[static_cast<std::size_t>(r.sku)];
  if (r.kind == Kind::kViewPage) ++s->views;
  simulate_work();
  if (r.kind != Kind::kCheckoutPage && !save(fd, *s)) return errno_text("write session file");  // at its end
  tally.count(r);
  return std::nullopt;
}

std::optional<std::vector<UserState>> FileStore::read_all(const std::string& dir, int users, std::string& error) {
  std::vector<UserState> out;
  for (int u = 0; u < users; ++u) {
    const int fd = ::open(file_of(dir, u).c_str(), O_RDONLY | O_CLOEXEC);
    auto s = fd >= 0 ? load(fd) : std::nullopt;
    if (fd >= 0) close(fd);
    if (!s) return error = errno_text(file_of(dir, u)), std::nullopt;
    out.push_back({s->cart.items(), s->views});
  }
  return out;
}

// ---- BrokerStore ----

bool BrokerStore::create(const std::string& segment, int users, std::string& error) {
  auto client = sessionbroker::Client::attach(segment);
  if (!client) return error = client.status().to_string(), false;
  for (int u = 0; u < users; ++u) {
    auto session = (*client)->create(user_id(u));
    if (!session) return error = fmt::format("create {}: {}", user_id(u), session.status().to_string()), false;
  }
  return static_cast<bool>((*client)->detach());
}

std::unique_ptr<BrokerStore> BrokerStore::attach(const std::string& segment, int users, std::string& error) {
  auto client = sessionbroker::Client::attach(segment);
  if (!client) return error = client.status().to_string(), nullptr;
  std::vector<sessionbroker::Session> sessions;
  for (int u = 0; u < users; ++u) {
    auto session = (*client)->open(user_id(u));
    if (!session) return error = fmt::format("open {}: {}", user_id(u), session.status().to_string()), nullptr;
    sessions.push_back(*session);
  }
  return std::unique_ptr<BrokerStore>(new BrokerStore(std::move(*client), std::move(sessions)));
}

BrokerStore::~BrokerStore() { (void)client_->detach(); }  // gives back every cached session lock

void BrokerStore::note_token(const Request& r, std::uint64_t token, Tally& tally) {
  std::lock_guard lk(mu_);
  auto& last = last_token_[static_cast<std::size_t>(r.user)];
  if (token != last) ++tally.process_grants;
  last = token;
}

std::optional<std::string> BrokerStore::serve(const Request& r, Tally& tally) {
  auto& session = sessions_[static_cast<std::size_t>(r.user)];
  const bool checkout = r.kind == Kind::kCheckoutPage;
  const char* attr = r.kind == Kind::kAddToCart ? kCart : kProfile;
  // Lock only what this request touches: a cart update and a page view of one user do not wait
  // for each other inside a process.
  auto lock = checkout ? session.lock({kCart, kProfile}, Mode::kShared, sessionbroker::in(kLockTimeout))
                       : session.lock({attr}, Mode::kExclusive, sessionbroker::in(kLockTimeout));
  if (!lock) return fmt::format("lock {}: {}", user_id(r.user), lock.status().to_string());
  note_token(r, lock->token(), tally);
  auto value = lock->get(attr);
  if (!value) return fmt::format("get {}: {}", user_id(r.user), value.status().to_string());
  if (checkout) {  // renders the cart beside the profile: both read under one shared lock
    auto cart = lock->get(kCart);
    if (!cart) return fmt::format("get {}: {}", user_id(r.user), cart.status().to_string());
  }
  simulate_work();
  if (r.kind == Kind::kAddToCart) {
    Cart cart = Cart::parse(value->value_or(""));
    ++cart.quantity[static_cast<std::size_t>(r.sku)];
    if (auto st = lock->put(kCart, cart.serialize()); !st) return st.to_string();
  } else if (r.kind == Kind::kViewPage) {
    if (auto st = lock->put(kProfile, serialize_views(parse_views(value->value_or("")) + 1)); !st) return st.to_string();
  }
  if (auto st = lock->unlock(); !st) return fmt::format("commit {}: {}", user_id(r.user), st.to_string());
  tally.count(r);
  return std::nullopt;
}

std::optional<std::vector<UserState>> BrokerStore::read_all(const std::string& segment, int users, std::string& error) {
  auto client = sessionbroker::Client::attach(segment);
  if (!client) return error = client.status().to_string(), std::nullopt;
  std::vector<UserState> out;
  for (int u = 0; u < users; ++u) {
    auto session = (*client)->open(user_id(u));
    if (!session) return error = fmt::format("open {}: {}", user_id(u), session.status().to_string()), std::nullopt;
    auto lock = session->lock_all(Mode::kShared, sessionbroker::in(kLockTimeout));
    if (!lock) return error = fmt::format("lock {}: {}", user_id(u), lock.status().to_string()), std::nullopt;
    auto all = lock->get_all();
    if (!all) return error = fmt::format("read {}: {}", user_id(u), all.status().to_string()), std::nullopt;
    out.push_back({Cart::parse((*all)[kCart]).items(), parse_views((*all)[kProfile])});
  }
  return out;
}

}  // namespace app
