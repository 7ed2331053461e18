#include "common.hpp"

#include <cstdio>

#include <fmt/format.h>

#include "etcd/address.hpp"
#include "units.hpp"

namespace sessionctl {

using sessionbroker::ErrorCode;

int exit_code_for(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk:
      return kExitOk;
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kTooLarge:
      return kExitUsage;
    case ErrorCode::kNotFound:
      return kExitNotFound;
    case ErrorCode::kTimeout:
    case ErrorCode::kBusy:
      return kExitTimeout;
    case ErrorCode::kStaleToken:
      return kExitLost;
    case ErrorCode::kAlreadyExists:
    case ErrorCode::kCapacityExceeded:
    case ErrorCode::kNoSegment:
    case ErrorCode::kIncompatible:
    case ErrorCode::kCorrupt:
    case ErrorCode::kPermissionDenied:
    case ErrorCode::kDetached:
    case ErrorCode::kNotHeld:
    case ErrorCode::kSystem:
    case ErrorCode::kUnavailable:
      return kExitError;
  }
  return kExitError;
}

int fail(const sessionbroker::Status& st) {
  fmt::print(stderr, "sessionctl: {}\n", st.to_string());
  return exit_code_for(st.code());
}

void add_store_option(CLI::App& sub, std::string& store) {
  store = kDefaultStore;
  sub.add_option("--store,--segment", store,
                 "the store: a segment name (the object /dev/shm/NAME) or etcd://HOST:PORT[,HOST:PORT...]/PREFIX")
      ->type_name("ADDR")
      ->capture_default_str();
}

bool is_etcd_store(const std::string& store) { return store.starts_with(sessionbroker::detail::etcd::kScheme); }

std::optional<int> refuse_etcd_store(const std::string& store, const std::string& command) {
  if (!is_etcd_store(store)) return std::nullopt;
  fmt::print(stderr, "sessionctl: usage: {} reads a shared-memory segment's counters; an etcd store has none\n",
             command);
  return kExitUsage;
}

CLI::Option* add_duration_option(CLI::App& sub, const std::string& name, std::chrono::milliseconds& out,
                                  const std::string& help) {
  auto check = [](const std::string& s) {
    return sessionbroker::detail::parse_duration(s) ? std::string()
                                                    : "expected a duration such as 200ms, 5s, 2m, of at most 2562047h";
  };
  // CLI11 runs the check before the function, so the dereference below sees a valid duration.
  auto store = [&out](const std::string& s) { out = *sessionbroker::detail::parse_duration(s); };
  return sub.add_option_function<std::string>(name, store, help)->check(check)->type_name("DURATION");
}

std::unique_ptr<sessionbroker::Client> attach_or_report(const std::string& store, int& exit_code) {
  auto client = sessionbroker::Client::attach(store);
  if (!client) {
    exit_code = fail(client.status());
    return nullptr;
  }
  return std::move(*client);
}

sessionbroker::Result<sessionbroker::Session> open_session(sessionbroker::Client& client, const std::string& id,
                                                           bool create) {
  auto session = client.open(id);
  if (session || !create || session.code() != ErrorCode::kNotFound) return session;
  auto created = client.create(id);
  if (created || created.code() != ErrorCode::kAlreadyExists) return created;
  return client.open(id);
}

sessionbroker::Status unlock_and_release(sessionbroker::Session& session, sessionbroker::SessionLock& lock,
                                         sessionbroker::Deadline deadline) {
  if (sessionbroker::Status st = lock.unlock(); !st) return st;
  sessionbroker::Status st = session.release(deadline);
  if (st.code() == ErrorCode::kNotHeld) return {};
  return st;
}

}  // namespace sessionctl
