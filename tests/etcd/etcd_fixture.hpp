// A fresh 3-member cluster per test, and clients on it with short timeouts so that failover
// tests finish in seconds.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "etcd_client.hpp"
#include "etcd_cluster.hpp"
#include "eventually.hpp"

namespace sbtest {

using namespace std::chrono_literals;
namespace etcd = sessionbroker::detail::etcd;
using sessionbroker::ErrorCode;

class EtcdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    cluster_ = EtcdCluster::start(&error);
    ASSERT_TRUE(cluster_) << error;
    client_ = connect(cluster_->endpoints());
    ASSERT_TRUE(client_);
  }

  static etcd::Options quick() {
    etcd::Options o;
    o.request_timeout = 5s;
    o.attempt_timeout = 500ms;
    o.watch_heartbeat = 500ms;
    return o;
  }
  std::unique_ptr<etcd::Client> connect(const std::vector<std::string>& endpoints, etcd::Options o = quick()) {
    auto c = etcd::Client::connect(endpoints, o);
    return c ? std::move(*c) : nullptr;
  }
  std::vector<std::string> members(std::initializer_list<int> which) const {
    std::vector<std::string> out;
    for (int i : which) out.push_back(cluster_->endpoints()[static_cast<std::size_t>(i)]);
    return out;
  }
  std::int64_t put(etcd::Client& c, const std::string& k, const std::string& v, std::int64_t lease = 0) {
    auto r = c.put(k, v, lease);
    EXPECT_TRUE(r) << r.status().to_string();
    return r ? r->header().revision() : -1;
  }

  std::unique_ptr<EtcdCluster> cluster_;
  std::unique_ptr<etcd::Client> client_;
};

// Collects what a background thread reports and lets the test wait for it.
template <class T>
class Inbox {
 public:
  void push(T v) {
    {
      std::lock_guard lk(mu_);
      items_.push_back(std::move(v));
    }
    cv_.notify_all();
  }
  // Waits until at least n items arrived (false at the timeout).
  bool wait_for(std::size_t n, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, timeout, [&] { return items_.size() >= n; });
  }
  std::vector<T> items() {
    std::lock_guard lk(mu_);
    return items_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<T> items_;
};

}  // namespace sbtest
