// The C API's shared internals (sessionbroker.h is its contract): what a handle holds, the
// per-thread last error, and the boundary every C function runs inside, so that no exception
// crosses into C.
//
// Handles: an sb_client owns the Client; an sb_session and an sb_lock hold a Session and a
// SessionLock, which keep the client's state alive by themselves (so handles may be freed in any
// order; after sb_client_free, which detaches, the others fail with SB_DETACHED).
// Thread safety: as the C++ API's; the last error is thread_local.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <string_view>

#include "sessionbroker/client.hpp"
#include "sessionbroker/sessionbroker.h"

struct sb_client {
  std::unique_ptr<sessionbroker::Client> client;
};
struct sb_session {
  sessionbroker::Session session;
};
struct sb_lock {
  sessionbroker::SessionLock lock;
};

namespace sessionbroker::detail {

// SB_OK as an int, so that the lambdas c_boundary runs deduce one return type.
inline constexpr int kOk = SB_OK;

// Records `message` as the calling thread's last error and returns `code` (never SB_OK).
int c_fail(ErrorCode code, std::string_view message) noexcept;
// SB_OK for an OK status; otherwise records its message and returns its code.
int c_result(const Status& st) noexcept;
// SB_INVALID_ARGUMENT, naming what was missing or wrong.
inline int c_invalid(std::string_view what) noexcept { return c_fail(ErrorCode::kInvalidArgument, what); }

// Explicit-length bytes: a NULL pointer is allowed only with length 0.
inline bool c_bytes_ok(const void* p, std::size_t n) { return p != nullptr || n == 0; }
inline std::string_view c_view(const char* p, std::size_t n) { return n == 0 ? std::string_view() : std::string_view(p, n); }
// SB_SHARED / SB_EXCLUSIVE to Mode; false for any other number.
bool c_mode(int mode, Mode& out);
// A relative timeout to a deadline: < 0 waits without end; saturates (in()).
Deadline c_deadline(std::int64_t timeout_ms);

// Runs `f` (returning an int result code); any exception becomes SB_SYSTEM with a message.
template <class F>
int c_boundary(F&& f) noexcept {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return c_fail(ErrorCode::kSystem, "out of memory");
  } catch (const std::exception& e) {
    return c_fail(ErrorCode::kSystem, e.what());
  } catch (...) {
    return c_fail(ErrorCode::kSystem, "unknown exception");
  }
}

// Friend of Session: locks from the C caller's arrays of names without copying them.
// timeout_ms 0 is a try-lock (SB_BUSY), as sessionbroker.h says.
struct CApi {
  static Result<SessionLock> lock(Session& s, const std::string_view* names, std::size_t count, bool whole, Mode mode,
                                  std::int64_t timeout_ms) {
    if (timeout_ms == 0) return s.lock_or_try(names, count, whole, mode, Deadline(), false);
    return s.lock_or_try(names, count, whole, mode, c_deadline(timeout_ms), true);
  }
};

// Wraps a C++ result into a new handle at *out. REQUIRES: out != nullptr.
template <class Handle, class T>
int c_handle(Result<T> r, Handle** out) {
  if (!r) return c_result(r.status());
  *out = new Handle{std::move(*r)};
  return kOk;
}

}  // namespace sessionbroker::detail
