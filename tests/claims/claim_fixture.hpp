// Shared fixture of the claim tests: a fresh store per test, clients attached in this process or in
// forked children, and snapshots of a session's holders and queue read from the store itself.
//
// ClaimTest runs every test on both backends (TEST_P, instantiated in claims_test.cpp): a fresh
// shared-memory segment, or a fresh key prefix on a 3-member etcd cluster on loopback that the
// test binary starts once (tests/support/etcd_cluster.hpp). The test code is the same; name_ is
// the store address either way. ShmClaimTest is for what only the segment has (its mutex repairs,
// its block allocator, the broker's expiry by the segment's clock).
#pragma once

#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

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

enum class StoreKind { kShm, kEtcd };
std::string to_string(StoreKind k);
void PrintTo(StoreKind k, std::ostream* os);  // GoogleTest prints the parameter by name

// One session as the store says it is, whichever the backend.
struct Snapshot {
  struct Holder {
    pid_t pid;
    Mode mode;
    std::uint64_t token;
    bool revoke;
  };
  struct Waiter {
    pid_t pid;
    Mode mode;
    std::uint64_t token;  // the queue key's revision on etcd; the ticket on shared memory
  };
  std::vector<Holder> holders;
  std::vector<Waiter> queue;  // FIFO order
  Mode mode = Mode::kShared;  // of the holders, when there are any
  std::uint64_t ttl_ms = 0;
  std::optional<std::uint64_t> grants, waits;  // counters the segment keeps (etcd keeps none)
};

class ClaimFixture : public ::testing::Test {
 protected:
  explicit ClaimFixture(StoreKind kind) : kind_(kind) {}
  void SetUp() override;
  void TearDown() override;

  bool shm() const { return kind_ == StoreKind::kShm; }
  // Shared memory: a fresh segment with these capacities in place of the current one.
  void create(const sessionbroker::shm::Capacities& caps);
  // Shared memory: the store's roles over seg_ (bind after mapping it, reset before unmapping it).
  void bind_roles();
  void reset_roles();
  std::unique_ptr<Client> attach() {
    auto c = Client::attach(name_);
    EXPECT_TRUE(c) << c.status().to_string();
    return c ? std::move(*c) : nullptr;
  }
  std::optional<Snapshot> snap(const std::string& id);
  std::size_t queue_len(const std::string& id) {
    auto s = snap(id);
    return s ? s->queue.size() : 0;
  }
  std::size_t holder_count(const std::string& id) {
    auto s = snap(id);
    return s ? s->holders.size() : 0;
  }
  // Takes the lock of `token` on `id` away by force, as an operator's break-lock: true if it did.
  bool break_lock(const std::string& id, std::uint64_t token);
  bool held_by(const std::string& id, pid_t pid) {
    auto s = snap(id);
    if (!s) return false;
    for (auto& h : s->holders)
      if (h.pid == pid) return true;
    return false;
  }

  const StoreKind kind_;
  std::string name_;  // the store address: a segment name or etcd://.../prefix
  // Shared memory only (null on etcd).
  std::unique_ptr<sessionbroker::detail::Segment> seg_;
  std::unique_ptr<sessionbroker::detail::Registry> registry_;
  std::unique_ptr<sessionbroker::detail::LockTable> locks_;
  std::unique_ptr<sessionbroker::detail::BlobStore> blobs_;
  std::unique_ptr<sessionbroker::detail::Admin> admin_;

 private:
  struct EtcdView;
  std::shared_ptr<EtcdView> etcd_;
};

class ClaimTest : public ClaimFixture, public ::testing::WithParamInterface<StoreKind> {
 protected:
  ClaimTest() : ClaimFixture(GetParam()) {}
};

class ShmClaimTest : public ClaimFixture {
 protected:
  ShmClaimTest() : ClaimFixture(StoreKind::kShm) {}
};

}  // namespace sbtest
