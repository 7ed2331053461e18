// Typed errors returned by value. Success costs nothing: an OK Status is a null pointer (see
// Status below), so it allocates nothing; a code and a message are built only on failure.
//
// Thread safety: values; no shared state.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "sessionbroker/export.hpp"

namespace sessionbroker {

enum class ErrorCode {
  kOk = 0,
  kInvalidArgument,  // empty or malformed input
  kTooLarge,         // session id, attribute name or value over its limit
  kNotFound,         // unknown session (or destroyed/expired while in use)
  kAlreadyExists,    // create of an id that exists
  kStaleToken,       // the lock was lost (revoked by deadline, broken, destroyed): no data given
  kTimeout,          // the deadline passed before the lock was granted
  kCapacityExceeded, // client table, session table, lock records or attribute memory full
  kNoSegment,        // the named segment does not exist
  kIncompatible,     // segment of another layout version or built differently
  kCorrupt,          // segment header or layout fails validation
  kPermissionDenied, // the segment exists but this user may not map it
  kDetached,         // use after detach, or of a parent's handle in a forked child
  kNotHeld,          // release of a lock this process does not hold (double release)
  kSystem,           // an operating-system call failed; message names it
  kBusy,             // a try-lock could not be granted at once (nothing was queued or asked)
  kUnavailable,      // the store cannot be reached: no etcd member answers, or none has a leader
};

SESSIONBROKER_EXPORT std::string_view to_string(ErrorCode code);

// A null pointer when OK (as leveldb's Status): building, moving and dropping an OK status costs
// a pointer, so the lock path pays nothing for the errors it does not have. A failure built from
// a Status::Fixed (an answer the lock path gives routinely, such as a busy try) points at that
// Fixed's shared, never-freed representation: building, copying and dropping it allocates nothing.
class [[nodiscard]] SESSIONBROKER_EXPORT Status {
  struct Rep;

 public:
  // A failure whose code and message never change, made once (a static) and returned often.
  class Fixed {
   public:
    Fixed(ErrorCode code, std::string message) : rep_(new Rep{code, std::move(message), true}) {}
    Fixed(const Fixed&) = delete;
    Fixed& operator=(const Fixed&) = delete;

   private:
    friend class Status;
    const Rep* rep_;  // never freed: a Status made from it may outlive the Fixed (a static)
  };

  Status() = default;
  Status(ErrorCode code, std::string message)
      : rep_(code == ErrorCode::kOk ? nullptr : new Rep{code, std::move(message), false}) {}
  Status(const Fixed& fixed) : rep_(fixed.rep_) {}  // NOLINT: implicit by design
  Status(const Status& other) : rep_(other.rep_ && !other.rep_->fixed ? new Rep(*other.rep_) : other.rep_) {}
  Status(Status&& other) noexcept : rep_(std::exchange(other.rep_, nullptr)) {}
  Status& operator=(Status other) noexcept {
    std::swap(rep_, other.rep_);
    return *this;
  }
  ~Status() {
    if (rep_ && !rep_->fixed) delete rep_;
  }
  static Status ok() { return {}; }

  bool is_ok() const { return rep_ == nullptr; }
  explicit operator bool() const { return is_ok(); }
  ErrorCode code() const { return rep_ ? rep_->code : ErrorCode::kOk; }
  const std::string& message() const;  // empty when OK
  std::string to_string() const;       // "stale token: ..." or "ok"

 private:
  struct Rep {
    ErrorCode code;
    std::string message;
    bool fixed;  // a Fixed's: shared by every Status made from it, never freed
  };
  const Rep* rep_ = nullptr;  // owned unless fixed
};

// A value or the Status explaining why there is none.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}            // NOLINT: implicit by design
  Result(Status error) : v_(std::move(error)) {}       // NOLINT: REQUIRES !error.is_ok()

  bool is_ok() const { return v_.index() == 0; }
  explicit operator bool() const { return is_ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  Status status() const { return is_ok() ? Status{} : std::get<1>(v_); }
  ErrorCode code() const { return is_ok() ? ErrorCode::kOk : std::get<1>(v_).code(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace sessionbroker
