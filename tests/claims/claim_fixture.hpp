// Shared fixture of the claim tests: a fresh segment, clients attached in this process or in
// forked children, and snapshots of a session's holders and queue read straight from the segment.
#pragma once

#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "eventually.hpp"
#include "process.hpp"
#include "segment_fixture.hpp"
#include "sessionbroker/client.hpp"

namespace sbtest {

using sessionbroker::Client;
using sessionbroker::ErrorCode;
using sessionbroker::Mode;
using sessionbroker::in;

class ClaimTest : public SegmentTest {
 protected:
  std::unique_ptr<Client> attach() {
    auto c = Client::attach(name_);
    EXPECT_TRUE(c) << c.status().to_string();
    return c ? std::move(*c) : nullptr;
  }

  std::optional<sessionbroker::detail::SessionSnapshot> snap(const std::string& id) {
    auto ref = store_->open_session(id);
    if (!ref) return std::nullopt;
    return store_->snapshot(ref->slot);
  }
  std::size_t queue_len(const std::string& id) {
    auto s = snap(id);
    return s ? s->queue.size() : 0;
  }
  std::size_t holder_count(const std::string& id) {
    auto s = snap(id);
    return s ? s->holders.size() : 0;
  }
  bool held_by(const std::string& id, pid_t pid) {
    auto s = snap(id);
    if (!s) return false;
    for (auto& h : s->holders)
      if (h.pid == pid) return true;
    return false;
  }
};

}  // namespace sbtest
