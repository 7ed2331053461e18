#include "sessionbroker/error.hpp"

namespace sessionbroker {

std::string_view to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return "ok";
    case ErrorCode::kInvalidArgument: return "invalid argument";
    case ErrorCode::kTooLarge: return "too large";
    case ErrorCode::kNotFound: return "not found";
    case ErrorCode::kAlreadyExists: return "already exists";
    case ErrorCode::kStaleToken: return "stale token";
    case ErrorCode::kTimeout: return "timed out";
    case ErrorCode::kCapacityExceeded: return "capacity exceeded";
    case ErrorCode::kNoSegment: return "no such segment";
    case ErrorCode::kIncompatible: return "incompatible segment";
    case ErrorCode::kCorrupt: return "corrupt segment";
    case ErrorCode::kPermissionDenied: return "permission denied";
    case ErrorCode::kDetached: return "detached";
    case ErrorCode::kNotHeld: return "not held";
    case ErrorCode::kSystem: return "system error";
    case ErrorCode::kBusy: return "busy";
    case ErrorCode::kUnavailable: return "store unavailable";
  }
  return "unknown error";
}

const std::string& Status::message() const {
  static const std::string kNone;
  return rep_ ? rep_->message : kNone;
}

std::string Status::to_string() const {
  if (is_ok()) return "ok";
  std::string s(sessionbroker::to_string(rep_->code));
  if (!rep_->message.empty()) s += ": " + rep_->message;
  return s;
}

}  // namespace sessionbroker
