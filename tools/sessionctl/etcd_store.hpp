// What etcd_store.cpp (dump and the remedies) and etcd_check.cpp (check) share: the parts of a key
// of the layout in docs/etcd.md "Key space", and the client keys of every host.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "admin_store.hpp"
#include "etcd/etcd_backend.hpp"
#include "etcd/etcd_client.hpp"

namespace sessionctl::etcdstore {

namespace etcd = sessionbroker::detail::etcd;

// One key under PREFIX/, taken apart. kind kOther for anything that is not one of the three forms.
struct KeyParts {
  enum Kind { kClient, kSession, kQueue, kOther } kind = kOther;
  std::string host;          // kClient
  std::string id;            // kSession, kQueue: the session id (decoded)
  std::string session_key;   // kSession, kQueue
  std::int64_t lease = 0;    // kClient, kQueue: the lease its name says
};
KeyParts parse_key(const etcd::Keys& keys, std::string_view key);

// "pid start_time" -> pid; nullopt for any other shape or a pid that is not positive.
std::optional<std::int32_t> parse_pid(std::string_view value);

// Every client key: its host, lease (the one it carries) and pid (0 if its value is malformed).
sessionbroker::Result<std::vector<ClientRow>> read_clients(etcd::Client& client, const etcd::Keys& keys);

// check over the whole key space (etcd_check.cpp).
sessionbroker::Result<CheckOutput> check_store(etcd::Client& client, const etcd::Keys& keys, const std::string& address);

}  // namespace sessionctl::etcdstore
