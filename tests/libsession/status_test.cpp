// Status is a null pointer when OK (nothing to build or free on the lock path) and owns a copy of
// its code and message otherwise; copies and moves keep the error and leave no shared state.
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

}  // namespace
