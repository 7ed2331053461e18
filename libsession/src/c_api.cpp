// The C API (sessionbroker.h), part 1: result codes and the last error, clients and sessions.
// Locks, values and expiry are in c_api_lock.cpp. Every function runs inside c_boundary (no
// exception reaches C), checks its handles and pointers (NULL: SB_INVALID_ARGUMENT) and calls the
// C++ API, whose ErrorCode is the result code.
//
// Thread safety: as the C++ API's. The last error is per thread (thread_local), so threads never
// see each other's messages.
#include <string>
#include <utility>
#include <vector>

#include "c_api.hpp"

using sessionbroker::Client;
using sessionbroker::ErrorCode;
using sessionbroker::Mode;
using sessionbroker::RevokeEvent;
using sessionbroker::Status;
using namespace sessionbroker::detail;

namespace {

// The result codes are ErrorCode's numbers: a binding may use either, and a code appended to
// ErrorCode without its SB_ twin fails here.
#define SB_SAME(c, e) static_assert(static_cast<int>(ErrorCode::e) == (c), #c " differs from ErrorCode::" #e)
SB_SAME(SB_OK, kOk);
SB_SAME(SB_INVALID_ARGUMENT, kInvalidArgument);
SB_SAME(SB_TOO_LARGE, kTooLarge);
SB_SAME(SB_NOT_FOUND, kNotFound);
SB_SAME(SB_ALREADY_EXISTS, kAlreadyExists);
SB_SAME(SB_STALE_TOKEN, kStaleToken);
SB_SAME(SB_TIMEOUT, kTimeout);
SB_SAME(SB_CAPACITY_EXCEEDED, kCapacityExceeded);
SB_SAME(SB_NO_SEGMENT, kNoSegment);
SB_SAME(SB_INCOMPATIBLE, kIncompatible);
SB_SAME(SB_CORRUPT, kCorrupt);
SB_SAME(SB_PERMISSION_DENIED, kPermissionDenied);
SB_SAME(SB_DETACHED, kDetached);
SB_SAME(SB_NOT_HELD, kNotHeld);
SB_SAME(SB_SYSTEM, kSystem);
SB_SAME(SB_BUSY, kBusy);
SB_SAME(SB_UNAVAILABLE, kUnavailable);
#undef SB_SAME
constexpr int kLastCode = SB_UNAVAILABLE;

static_assert(static_cast<int>(RevokeEvent::Kind::kRequested) == SB_REVOKE_REQUESTED &&
              static_cast<int>(RevokeEvent::Kind::kReleased) == SB_REVOKE_RELEASED &&
              static_cast<int>(RevokeEvent::Kind::kLost) == SB_REVOKE_LOST);
static_assert(static_cast<int>(Mode::kShared) == SB_SHARED && static_cast<int>(Mode::kExclusive) == SB_EXCLUSIVE);

thread_local std::string last_error;

}  // namespace

namespace sessionbroker::detail {

int c_fail(ErrorCode code, std::string_view message) noexcept {
  try {
    last_error.assign(to_string(code));
    if (!message.empty()) last_error.append(": ").append(message);
  } catch (...) {
    last_error.clear();  // no memory for the message: the code still tells what happened
  }
  return static_cast<int>(code);
}

int c_result(const Status& st) noexcept { return st ? SB_OK : c_fail(st.code(), st.message()); }

bool c_mode(int mode, Mode& out) {
  if (mode != SB_SHARED && mode != SB_EXCLUSIVE) return false;
  out = mode == SB_EXCLUSIVE ? Mode::kExclusive : Mode::kShared;
  return true;
}

Deadline c_deadline(std::int64_t timeout_ms) {
  return timeout_ms < 0 ? Deadline::max() : in(std::chrono::milliseconds(timeout_ms));
}

}  // namespace sessionbroker::detail

// ---- result codes ----

const char* sb_code_name(int code) {
  if (code < 0 || code > kLastCode) return "unknown";
  return sessionbroker::to_string(static_cast<ErrorCode>(code)).data();  // string literals: NUL-terminated
}

const char* sb_last_error(void) { return last_error.c_str(); }

// ---- client ----

int sb_attach(const char* store, sb_client** out) {
  return c_boundary([&] {
    if (!store || !out) return c_invalid("sb_attach needs a store name and an out pointer");
    auto c = Client::attach(store);
    if (!c) return c_result(c.status());
    *out = new sb_client{std::move(*c)};
    return kOk;
  });
}

int sb_detach(sb_client* c) {
  return c_boundary([&] { return c ? c_result(c->client->detach()) : c_invalid("client handle is NULL"); });
}

void sb_client_free(sb_client* c) {
  (void)c_boundary([&] {
    delete c;  // ~Client detaches
    return kOk;
  });
}

uint32_t sb_max_value_bytes(const sb_client* c) {
  if (!c) return c_invalid("client handle is NULL"), 0;
  return c->client->max_value_bytes();
}

int sb_on_revoke(sb_client* c, sb_revoke_fn fn, void* ctx) {
  return c_boundary([&] {
    if (!c) return c_invalid("client handle is NULL");
    if (!fn) {
      c->client->on_revoke(nullptr);
      return kOk;
    }
    c->client->on_revoke([fn, ctx](const RevokeEvent& e) {
      fn(ctx, static_cast<int>(e.kind), e.session_id.data(), e.session_id.size(), e.token);
    });
    return kOk;
  });
}

// ---- sessions ----

int sb_create(sb_client* c, const char* id, size_t id_len, int64_t ttl_ms, sb_session** out) {
  return c_boundary([&] {
    if (!c || !out || !c_bytes_ok(id, id_len)) return c_invalid("sb_create needs a client, an id and an out pointer");
    return c_handle(c->client->create(c_view(id, id_len), std::chrono::milliseconds(ttl_ms)), out);
  });
}

int sb_open(sb_client* c, const char* id, size_t id_len, sb_session** out) {
  return c_boundary([&] {
    if (!c || !out || !c_bytes_ok(id, id_len)) return c_invalid("sb_open needs a client, an id and an out pointer");
    return c_handle(c->client->open(c_view(id, id_len)), out);
  });
}

int sb_open_or_create(sb_client* c, const char* id, size_t id_len, int64_t ttl_ms, sb_session** out, int* created) {
  return c_boundary([&] {
    if (!c || !out || !c_bytes_ok(id, id_len))
      return c_invalid("sb_open_or_create needs a client, an id and an out pointer");
    auto r = c->client->open_or_create(c_view(id, id_len), std::chrono::milliseconds(ttl_ms));
    if (!r) return c_result(r.status());
    *out = new sb_session{std::move(r->session)};
    if (created) *created = r->created ? 1 : 0;
    return kOk;
  });
}

// Client::destroy, but through the C timeout convention: 0 is a try (SB_BUSY, nothing queued).
int sb_destroy(sb_client* c, const char* id, size_t id_len, int64_t timeout_ms) {
  return c_boundary([&] {
    if (!c || !c_bytes_ok(id, id_len)) return c_invalid("sb_destroy needs a client and an id");
    auto s = c->client->open(c_view(id, id_len));
    if (!s) return c_result(s.status());
    auto l = CApi::lock(*s, nullptr, 0, true, Mode::kExclusive, timeout_ms);
    if (!l) return c_result(l.status());
    return c_result(l->destroy());
  });
}

int sb_list(sb_client* c, sb_id_fn fn, void* ctx) {
  return c_boundary([&] {
    if (!c || !fn) return c_invalid("sb_list needs a client and a callback");
    auto ids = c->client->list();
    if (!ids) return c_result(ids.status());
    for (const std::string& id : *ids)
      if (fn(ctx, id.data(), id.size()) != 0) break;
    return kOk;
  });
}

void sb_session_free(sb_session* s) {
  (void)c_boundary([&] {
    delete s;
    return kOk;
  });
}

int sb_session_release(sb_session* s, int64_t timeout_ms) {
  return c_boundary([&] { return s ? c_result(s->session.release(c_deadline(timeout_ms))) : c_invalid("session handle is NULL"); });
}

uint64_t sb_session_token(const sb_session* s) { return s ? s->session.token() : 0; }

int sb_session_holders(sb_session* s, int32_t* pids, size_t cap, size_t* count) {
  return c_boundary([&] {
    if (!s || !count || (!pids && cap > 0)) return c_invalid("session handle, pids or count is NULL");
    auto r = s->session.holder_pids();
    if (!r) return c_result(r.status());
    *count = r->size();
    for (size_t i = 0; i < r->size() && i < cap; ++i) pids[i] = (*r)[i];
    return kOk;
  });
}
