// Fixture of the C API tests: a fresh segment, one client attached through sb_attach, and helpers
// that call the C functions as a C program would and expect each call to succeed.
#pragma once

#include <cstring>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include "segment_fixture.hpp"
#include "sessionbroker/sessionbroker.h"

namespace sbtest {

inline std::string text(const void* p, size_t n) { return std::string(static_cast<const char*>(p), n); }

class CApiTest : public SegmentTest {
 protected:
  void SetUp() override {
    SegmentTest::SetUp();
    ASSERT_EQ(sb_attach(name_.c_str(), &c_), SB_OK) << sb_last_error();
  }
  void TearDown() override {
    sb_client_free(c_);
    SegmentTest::TearDown();
  }
  sb_session* open_or_create(const std::string& id) {
    sb_session* s = nullptr;
    EXPECT_EQ(sb_open_or_create(c_, id.data(), id.size(), 0, &s, nullptr), SB_OK) << sb_last_error();
    return s;
  }
  sb_lock* lock1(sb_session* s, const char* name, int mode, int64_t timeout_ms = 5000) {
    const char* names[] = {name};
    const size_t lens[] = {std::strlen(name)};
    sb_lock* l = nullptr;
    EXPECT_EQ(sb_lock_attrs(s, names, lens, 1, mode, timeout_ms, &l), SB_OK) << sb_last_error();
    return l;
  }
  std::optional<std::string> get(sb_lock* l, const std::string& name) {
    char buf[256];
    size_t len = 0;
    int found = -1;
    EXPECT_EQ(sb_get(l, name.data(), name.size(), buf, sizeof buf, &len, &found), SB_OK) << sb_last_error();
    if (!found) return std::nullopt;
    return std::string(buf, len);
  }
  sessionbroker::detail::SessionSnapshot snap(const std::string& id) {
    return *admin_->snapshot(registry_->open_session(id)->slot);
  }
  sb_client* c_ = nullptr;
};

}  // namespace sbtest
