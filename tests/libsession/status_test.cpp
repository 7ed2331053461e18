// Status is a null pointer when OK (nothing to build or free on the lock path) and owns a copy of
// its code and message otherwise; copies and moves keep the error and leave no shared state. A
// Status made from a Status::Fixed shares that Fixed's code and message, never freed.
#include <gtest/gtest.h>

#include <utility>

#include "sessionbroker/error.hpp"

namespace {

using sessionbroker::ErrorCode;
using sessionbroker::Status;

TEST(Status, OkHasNoCodeAndNoMessage) {
  const Status ok;
  EXPECT_TRUE(ok.is_ok());
  EXPECT_EQ(ok.code(), ErrorCode::kOk);
  EXPECT_EQ(ok.message(), "");
  EXPECT_EQ(ok.to_string(), "ok");
  EXPECT_TRUE(Status(ErrorCode::kOk, "ignored").is_ok()) << "kOk with a message is still OK";
}

TEST(Status, CopiesAndMovesKeepTheError) {
  Status err(ErrorCode::kStaleToken, "token 7 no longer holds the session lock");
  Status copy = err;
  EXPECT_EQ(copy.code(), ErrorCode::kStaleToken);
  EXPECT_EQ(copy.to_string(), "stale token: token 7 no longer holds the session lock");
  Status moved = std::move(err);
  EXPECT_EQ(moved.message(), "token 7 no longer holds the session lock");
  copy = Status();
  EXPECT_TRUE(copy.is_ok()) << "assigning OK drops the error";
  copy = moved;
  moved = Status(ErrorCode::kTimeout, "later");
  EXPECT_EQ(copy.code(), ErrorCode::kStaleToken) << "a copy does not share the original's error";
  const Status& same = copy;
  copy = same;  // self-assignment keeps it
  EXPECT_EQ(copy.code(), ErrorCode::kStaleToken);
}

// The routine answers of the lock path (a busy try) are Fixed: making, copying and dropping them
// copies a pointer. Shown by the address of the message: every copy reads the one string, which
// outlives them all (ASan would see it freed by the first copy dropped).
TEST(Status, AFixedFailureIsSharedAndNeverFreed) {
  static const Status::Fixed kBusy(ErrorCode::kBusy, "the session is in use");
  const std::string* shared = nullptr;
  {
    Status first = kBusy;
    shared = &first.message();
    Status copy = first;
    EXPECT_EQ(&copy.message(), shared) << "a copy of a fixed status shares its message";
    Status assigned(ErrorCode::kTimeout, "later");
    assigned = copy;
    EXPECT_EQ(&assigned.message(), shared);
    Status moved = std::move(copy);
    EXPECT_EQ(moved.code(), ErrorCode::kBusy);
    EXPECT_EQ(moved.to_string(), "busy: the session is in use");
  }
  const Status again = kBusy;
  EXPECT_EQ(&again.message(), shared) << "dropping the copies freed nothing";
  EXPECT_EQ(again.message(), "the session is in use");
  const Status owned(ErrorCode::kBusy, "the session is in use");
  EXPECT_NE(&owned.message(), shared) << "an ordinary status owns its own";
}

}  // namespace
