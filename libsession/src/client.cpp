// Public API: thin wrappers over ClientImpl / LocalSession that validate input and keep handles
// alive. Boost exceptions never cross this boundary (the backend returns Status).
#include "sessionbroker/client.hpp"

#include <algorithm>
#include <array>
#include <span>

#include <fmt/format.h>

#include "client_impl.hpp"

namespace sessionbroker {

using detail::ClientImpl;
using detail::LocalSession;
using detail::ThreadLockState;

namespace {
Status not_locked() {
  static const Status::Fixed kUnlocked(ErrorCode::kNotHeld, "the lock was already unlocked");
  return kUnlocked;
}
Status not_covered(std::string_view name) {
  return Status(ErrorCode::kInvalidArgument, fmt::format("attribute '{}' is not covered by this lock", name));
}
Status check_attr_name(std::string_view name) {
  if (name.empty()) return Status(ErrorCode::kInvalidArgument, "attribute name is empty");
  if (name.size() > detail::kMaxAttrNameBytes)
    return Status(ErrorCode::kTooLarge, fmt::format("attribute name is {} bytes; the limit is {}", name.size(), detail::kMaxAttrNameBytes));
  return {};
}
}  // namespace

// ---- Client ----

Result<std::unique_ptr<Client>> Client::attach(const std::string& segment) {
  try {
    auto backend = detail::open_backend(segment);
    if (!backend) return backend.status();
    auto impl = std::make_shared<ClientImpl>(std::move(*backend));
    impl->start();
    return std::unique_ptr<Client>(new Client(std::move(impl)));
  } catch (const std::exception& e) {
    return Status(ErrorCode::kSystem, fmt::format("attach to '{}': {}", segment, e.what()));
  }
}

Client::Client(std::shared_ptr<ClientImpl> impl) : impl_(std::move(impl)) {}
Client::~Client() { (void)detach(); }
Status Client::detach() { return impl_->detach(); }
std::uint32_t Client::max_value_bytes() const { return impl_->backend().max_value_bytes(); }
void Client::on_revoke(RevokeCallback callback) { impl_->set_callback(std::move(callback)); }

Result<Session> Client::create(std::string_view id, std::chrono::milliseconds ttl) {
  if (ttl.count() < 0) return Status(ErrorCode::kInvalidArgument, "ttl must not be negative");
  auto s = impl_->session(id, ClientImpl::Open::kCreate, static_cast<std::uint64_t>(ttl.count()));
  if (!s) return s.status();
  return Session(impl_, std::move(*s));
}

Result<Session> Client::open(std::string_view id) {
  auto s = impl_->session(id, ClientImpl::Open::kExisting, 0);
  if (!s) return s.status();
  return Session(impl_, std::move(*s));
}

Result<OpenedSession> Client::open_or_create(std::string_view id, std::chrono::milliseconds ttl) {
  if (ttl.count() < 0) return Status(ErrorCode::kInvalidArgument, "ttl must not be negative");
  bool created = false;
  auto s = impl_->session(id, ClientImpl::Open::kEither, static_cast<std::uint64_t>(ttl.count()), &created);
  if (!s) return s.status();
  return OpenedSession{Session(impl_, std::move(*s)), created};
}

Status Client::destroy(std::string_view id, Deadline deadline) {
  auto s = open(id);
  if (!s) return s.status();
  auto lock = s->lock_all(Mode::kExclusive, deadline);
  if (!lock) return lock.status();
  Status st = s->local_->destroy_with(*lock->state_);
  lock->state_.reset();
  impl_->forget(*s->local_);
  return st;
}

Result<std::vector<std::string>> Client::list() {
  if (Status st = impl_->usable(); !st) return st;
  return impl_->backend().list_sessions();
}

// ---- Session ----

Session::Session(std::shared_ptr<ClientImpl> client, std::shared_ptr<LocalSession> local)
    : client_(std::move(client)), local_(std::move(local)) {}

const std::string& Session::id() const { return local_->id(); }

// Inline into the three lock overloads (its only callers, all in this file): the cached-lock
// path is a handful of instructions, and a call more is a sixth of it.
[[gnu::always_inline]] inline Result<SessionLock> Session::lock_names(const std::string_view* names, std::size_t count,
                                                                     bool whole, Mode mode, Deadline deadline) {
  auto t = local_->lock(std::span(names, count), whole, mode, deadline);  // checks client_->usable()
  if (!t) return t.status();
  return SessionLock(std::move(*t));
}

Result<SessionLock> Session::lock(const std::vector<std::string>& attrs, Mode mode, Deadline deadline) {
  constexpr std::size_t kOnStack = 8;
  std::array<std::string_view, kOnStack> small;
  std::vector<std::string_view> large;
  std::span<std::string_view> views;
  if (attrs.size() <= kOnStack) {
    views = std::span(small).first(attrs.size());
  } else {
    large.resize(attrs.size());
    views = large;
  }
  std::copy(attrs.begin(), attrs.end(), views.begin());
  return lock_names(views.data(), views.size(), false, mode, deadline);
}

Result<SessionLock> Session::lock(std::initializer_list<std::string_view> attrs, Mode mode, Deadline deadline) {
  return lock_names(attrs.begin(), attrs.size(), false, mode, deadline);
}

Result<SessionLock> Session::lock_all(Mode mode, Deadline deadline) { return lock_names(nullptr, 0, true, mode, deadline); }

Result<SessionLock> Session::try_lock_names(const std::string_view* names, std::size_t count, bool whole, Mode mode) {
  auto t = local_->try_lock(std::span(names, count), whole, mode);  // checks client_->usable()
  if (!t) return t.status();
  return SessionLock(std::move(*t));
}

Result<SessionLock> Session::lock_or_try(const std::string_view* names, std::size_t count, bool whole, Mode mode,
                                         Deadline deadline, bool wait) {
  return wait ? lock_names(names, count, whole, mode, deadline) : try_lock_names(names, count, whole, mode);
}

Result<SessionLock> Session::try_lock(const std::vector<std::string>& attrs, Mode mode) {
  std::vector<std::string_view> views(attrs.begin(), attrs.end());
  return try_lock_names(views.data(), views.size(), false, mode);
}

Result<SessionLock> Session::try_lock(std::initializer_list<std::string_view> attrs, Mode mode) {
  return try_lock_names(attrs.begin(), attrs.size(), false, mode);
}

Result<SessionLock> Session::try_lock_all(Mode mode) { return try_lock_names(nullptr, 0, true, mode); }

Status Session::release(Deadline deadline) {
  if (Status st = client_->usable(); !st) return st;
  return local_->release(deadline);
}
std::uint64_t Session::token() const { return local_->token(); }
bool Session::held() const { return local_->held(); }
Result<std::vector<std::int32_t>> Session::holder_pids() const {
  if (Status st = client_->usable(); !st) return st;
  return client_->backend().holder_pids(local_->handle());
}

// ---- SessionLock ----

SessionLock::SessionLock(std::unique_ptr<ThreadLockState> state) : state_(std::move(state)) {}
SessionLock::SessionLock(SessionLock&&) noexcept = default;
SessionLock& SessionLock::operator=(SessionLock&& other) noexcept {
  if (this != &other) {
    if (state_) (void)unlock();
    state_ = std::move(other.state_);
  }
  return *this;
}
SessionLock::~SessionLock() {
  if (state_) (void)unlock();  // an unlocked lock has nothing to do (and no error to build)
}

std::uint64_t SessionLock::token() const { return state_ ? state_->grant.token : 0; }
Mode SessionLock::mode() const { return state_ ? state_->mode : Mode::kShared; }

Result<std::optional<std::string>> SessionLock::get(std::string_view name) {
  if (!state_) return not_locked();
  if (Status st = state_->client->usable(); !st) return st;
  if (Status st = check_attr_name(name); !st) return st;
  if (!state_->covers(name)) return not_covered(name);
  if (auto it = state_->changes.find(name); it != state_->changes.end()) {
    // Our own uncommitted write, but only while the lock is still ours.
    auto committed = state_->client->backend().read(state_->session->handle(), state_->grant, name, state_->copy_slot());
    if (!committed) return committed.status();
    return it->second;
  }
  return state_->client->backend().read(state_->session->handle(), state_->grant, name, state_->copy_slot());
}

Result<std::map<std::string, std::string>> SessionLock::get_all() {
  if (!state_) return not_locked();
  if (Status st = state_->client->usable(); !st) return st;
  auto all = state_->client->backend().read_all(state_->session->handle(), state_->grant, state_->copy_slot());
  if (!all) return all.status();
  std::map<std::string, std::string> out;
  for (auto& [name, value] : *all)
    if (state_->covers(name)) out.emplace(name, std::move(value));
  for (auto& [name, value] : state_->changes) {
    if (value) out[name] = *value;
    else out.erase(name);
  }
  return out;
}

Status SessionLock::put(std::string_view name, std::string_view value) {
  if (!state_) return not_locked();
  if (Status st = state_->client->usable(); !st) return st;
  if (Status st = check_attr_name(name); !st) return st;
  if (!state_->covers(name)) return not_covered(name);
  if (state_->mode != Mode::kExclusive) return Status(ErrorCode::kInvalidArgument, "put needs an exclusive lock");
  const std::uint32_t limit = state_->client->backend().max_value_bytes();
  if (value.size() > limit)
    return Status(ErrorCode::kTooLarge, fmt::format("value of '{}' is {} bytes; the segment's limit is {}", name, value.size(), limit));
  state_->changes.insert_or_assign(std::string(name), std::string(value));
  return {};
}

Status SessionLock::erase(std::string_view name) {
  if (!state_) return not_locked();
  if (Status st = state_->client->usable(); !st) return st;
  if (Status st = check_attr_name(name); !st) return st;
  if (!state_->covers(name)) return not_covered(name);
  if (state_->mode != Mode::kExclusive) return Status(ErrorCode::kInvalidArgument, "erase needs an exclusive lock");
  state_->changes.insert_or_assign(std::string(name), std::nullopt);
  return {};
}

Status SessionLock::commit() {
  if (!state_) return not_locked();
  if (Status st = state_->client->usable(); !st) return st;
  return state_->session->confirm_and_commit(*state_);
}

Status SessionLock::discard() {
  if (!state_) return not_locked();
  state_->changes.clear();
  return unlock();
}

Status SessionLock::set_ttl(std::chrono::milliseconds ttl) {
  if (!state_) return not_locked();
  if (ttl.count() < 0) return Status(ErrorCode::kInvalidArgument, "ttl must not be negative");
  if (Status st = state_->client->usable(); !st) return st;
  return state_->client->backend().set_ttl(state_->session->handle(), state_->grant, static_cast<std::uint64_t>(ttl.count()));
}

Status SessionLock::touch() {
  if (!state_) return not_locked();
  if (Status st = state_->client->usable(); !st) return st;
  return state_->client->backend().touch(state_->session->handle(), state_->grant);
}

Result<std::chrono::milliseconds> SessionLock::ttl_remaining() {
  if (!state_) return not_locked();
  if (Status st = state_->client->usable(); !st) return st;
  auto left = state_->client->backend().ttl_remaining(state_->session->handle(), state_->grant);
  if (!left) return left.status();
  if (!*left) return kNeverExpires;
  constexpr auto kMax = static_cast<std::uint64_t>(std::chrono::milliseconds::max().count());
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::min(**left, kMax)));
}

// As Client::destroy, with the lock the caller already holds.
Status SessionLock::destroy() {
  if (!state_) return not_locked();
  if (!state_->whole || state_->mode != Mode::kExclusive)
    return Status(ErrorCode::kInvalidArgument, "destroy needs an exclusive lock on the whole session (lock_all)");
  if (Status st = state_->client->usable(); !st) {
    (void)unlock();
    return st;
  }
  auto state = std::move(state_);
  Status st = state->session->destroy_with(*state);
  // A stale grant destroyed nothing: the session lives on, and this process keeps its one local view of it.
  if (st || st.code() == ErrorCode::kNotFound) state->client->forget(*state->session);
  return st;  // `state` dies here, with no mutex held
}

Status SessionLock::unlock() {
  if (!state_) return not_locked();
  auto state = std::move(state_);
  // In a forked child the parent's lock state is not ours to touch (its mutexes may be mid-use).
  if (state->client->forked()) return state->client->usable();
  LocalSession* session = state->session.get();  // kept alive by `state` until unlock lets go of it
  return session->unlock(std::move(state));
}

}  // namespace sessionbroker
