// The C API (sessionbroker.h), part 2: locks, values, commit and unlock, expiry and destroy under
// a lock. Conventions as in c_api.cpp. Values leave the library only into memory the caller owns
// (its buffer, or its allocator's), never memory the caller would free with ours.
//
// sb_unlock, sb_discard and sb_destroy_locked free the lock handle whatever the result: a binding
// never has to guess whether a failed unlock left something to free.
#include <algorithm>
#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "c_api.hpp"

using sessionbroker::ErrorCode;
using sessionbroker::kNeverExpires;
using sessionbroker::Mode;
using namespace sessionbroker::detail;

namespace {

// Names as views over the caller's arrays; up to kOnStack of them without allocating.
constexpr std::size_t kOnStack = 8;

int lock_with(sb_session* s, const std::string_view* names, std::size_t count, bool whole, int mode,
              int64_t timeout_ms, sb_lock** out) {
  Mode m;
  if (!c_mode(mode, m)) return c_invalid("mode must be SB_SHARED or SB_EXCLUSIVE");
  return c_handle(CApi::lock(s->session, names, count, whole, m, timeout_ms), out);
}

// What was found, into the out pointers. REQUIRES: they are not NULL.
int give_size(const std::optional<std::string>& v, size_t* len, int* found) {
  *found = v.has_value() ? 1 : 0;
  *len = v ? v->size() : 0;
  return kOk;
}

}  // namespace

// ---- locks ----

int sb_lock_attrs(sb_session* s, const char* const* names, const size_t* name_lens, size_t count, int mode,
                  int64_t timeout_ms, sb_lock** out) {
  return c_boundary([&] {
    if (!s || !out || (count > 0 && (!names || !name_lens)))
      return c_invalid("sb_lock_attrs needs a session, names, their lengths and an out pointer");
    std::array<std::string_view, kOnStack> small;
    std::vector<std::string_view> large;
    std::string_view* views = small.data();
    if (count > kOnStack) {
      large.resize(count);
      views = large.data();
    }
    for (size_t i = 0; i < count; ++i) {
      if (!c_bytes_ok(names[i], name_lens[i])) return c_invalid("an attribute name is NULL");
      views[i] = c_view(names[i], name_lens[i]);
    }
    return lock_with(s, views, count, false, mode, timeout_ms, out);
  });
}

int sb_lock_all(sb_session* s, int mode, int64_t timeout_ms, sb_lock** out) {
  return c_boundary([&] {
    if (!s || !out) return c_invalid("sb_lock_all needs a session and an out pointer");
    return lock_with(s, nullptr, 0, true, mode, timeout_ms, out);
  });
}

uint64_t sb_lock_token(const sb_lock* l) { return l ? l->lock.token() : 0; }

// ---- values ----

int sb_get(sb_lock* l, const char* name, size_t name_len, void* buf, size_t cap, size_t* len, int* found) {
  return c_boundary([&] {
    if (!l || !len || !found || !c_bytes_ok(name, name_len) || !c_bytes_ok(buf, cap))
      return c_invalid("sb_get needs a lock, a name, a buffer (or cap 0) and the len and found pointers");
    auto v = l->lock.get(c_view(name, name_len));
    if (!v) return c_result(v.status());
    const std::optional<std::string>& value = *v;
    if (value && !value->empty() && value->size() <= cap) std::memcpy(buf, value->data(), value->size());
    return give_size(value, len, found);
  });
}

int sb_get_alloc(sb_lock* l, const char* name, size_t name_len, sb_alloc_fn alloc, void* ctx, void** out, size_t* len,
                 int* found) {
  return c_boundary([&] {
    if (!l || !alloc || !out || !len || !found || !c_bytes_ok(name, name_len))
      return c_invalid("sb_get_alloc needs a lock, a name, an allocator and the out, len and found pointers");
    auto v = l->lock.get(c_view(name, name_len));
    if (!v) return c_result(v.status());
    void* mem = nullptr;
    if (*v) {
      mem = alloc(ctx, (*v)->size());
      if (!mem && !(*v)->empty()) return c_fail(ErrorCode::kSystem, "the allocator callback returned NULL");
      if (!(*v)->empty()) std::memcpy(mem, (*v)->data(), (*v)->size());
    }
    *out = mem;
    return give_size(*v, len, found);
  });
}

int sb_get_all(sb_lock* l, sb_attr_fn fn, void* ctx) {
  return c_boundary([&] {
    if (!l || !fn) return c_invalid("sb_get_all needs a lock and a callback");
    auto all = l->lock.get_all();
    if (!all) return c_result(all.status());
    for (const auto& [name, value] : *all)
      if (fn(ctx, name.data(), name.size(), value.data(), value.size()) != 0) break;
    return kOk;
  });
}

int sb_put(sb_lock* l, const char* name, size_t name_len, const void* value, size_t value_len) {
  return c_boundary([&] {
    if (!l || !c_bytes_ok(name, name_len) || !c_bytes_ok(value, value_len))
      return c_invalid("sb_put needs a lock, a name and a value (or length 0)");
    return c_result(l->lock.put(c_view(name, name_len), c_view(static_cast<const char*>(value), value_len)));
  });
}

int sb_erase(sb_lock* l, const char* name, size_t name_len) {
  return c_boundary([&] {
    if (!l || !c_bytes_ok(name, name_len)) return c_invalid("sb_erase needs a lock and a name");
    return c_result(l->lock.erase(c_view(name, name_len)));
  });
}

// ---- commit, unlock ----

int sb_commit(sb_lock* l) {
  return c_boundary([&] { return l ? c_result(l->lock.commit()) : c_invalid("lock handle is NULL"); });
}

int sb_unlock(sb_lock* l) {
  return c_boundary([&] {
    if (!l) return c_invalid("lock handle is NULL");
    std::unique_ptr<sb_lock> owned(l);  // freed whatever unlock says (also if it throws)
    return c_result(owned->lock.unlock());
  });
}

void sb_discard(sb_lock* l) {
  (void)c_boundary([&] {
    std::unique_ptr<sb_lock> owned(l);
    return owned ? c_result(owned->lock.discard()) : SB_OK;
  });
}

// ---- expiry and destroy under a lock ----

int sb_set_ttl(sb_lock* l, int64_t ttl_ms) {
  return c_boundary([&] { return l ? c_result(l->lock.set_ttl(std::chrono::milliseconds(ttl_ms))) : c_invalid("lock handle is NULL"); });
}

int sb_touch(sb_lock* l) {
  return c_boundary([&] { return l ? c_result(l->lock.touch()) : c_invalid("lock handle is NULL"); });
}

int sb_ttl_remaining(sb_lock* l, int64_t* ms) {
  return c_boundary([&] {
    if (!l || !ms) return c_invalid("sb_ttl_remaining needs a lock and an out pointer");
    auto left = l->lock.ttl_remaining();
    if (!left) return c_result(left.status());
    static_assert(kNeverExpires.count() == -1, "sessionbroker.h documents -1 for 'never expires'");
    *ms = left->count();
    return kOk;
  });
}

int sb_destroy_locked(sb_lock* l) {
  return c_boundary([&] {
    if (!l) return c_invalid("lock handle is NULL");
    std::unique_ptr<sb_lock> owned(l);
    const int rc = c_result(owned->lock.destroy());
    if (owned->lock.locked()) (void)owned->lock.discard();  // not a whole exclusive lock: kept by destroy()
    return rc;
  });
}
