// Where the two runs keep session state. A worker process makes one store after the fork and
// serves requests from all its threads through it.
//
// FileStore is the naive way: each request reads the user's whole session from a file at its
// start and writes it back at its end, with no lock (PHP's file sessions without flock, or any
// cache used as get-then-set). Two requests of one user that overlap both start from the same
// state, and the later write discards the earlier one's change: a lost update.
//
// BrokerStore keeps the state in sessionbroker. A request locks just the attribute it changes
// (exclusive) or reads (shared), so threads of one process serving one user run side by side when
// they touch different attributes; across processes the session lock, cached between requests
// and handed over on a revoke request, serialises them. No update can be lost.
//
// Thread safety: serve() may be called from any number of threads of the process that made the
// store. Process safety: make a store in the process that uses it (after fork).
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "sessionbroker/client.hpp"
#include "workload.hpp"

namespace app {

class SessionStore {
 public:
  virtual ~SessionStore() = default;
  // Serves one request. Returns an error message, or nothing on success. Counts in `tally` what
  // the request changed once that change is stored.
  virtual std::optional<std::string> serve(const Request& r, Tally& tally) = 0;
};

class FileStore : public SessionStore {
 public:
  // Creates one empty session file per user in `dir`.
  static bool create(const std::string& dir, int users, std::string& error);
  static std::unique_ptr<FileStore> open(const std::string& dir, int users, std::string& error);
  // What the files hold now.
  static std::optional<std::vector<UserState>> read_all(const std::string& dir, int users, std::string& error);
  ~FileStore() override;

  std::optional<std::string> serve(const Request& r, Tally& tally) override;

 private:
  explicit FileStore(std::vector<int> fds) : fds_(std::move(fds)) {}
  std::vector<int> fds_;  // one per user, opened read-write
};

class BrokerStore : public SessionStore {
 public:
  // Creates a session per user (empty cart and profile).
  static bool create(const std::string& segment, int users, std::string& error);
  static std::unique_ptr<BrokerStore> attach(const std::string& segment, int users, std::string& error);
  // What the sessions hold now, read under shared locks.
  static std::optional<std::vector<UserState>> read_all(const std::string& segment, int users, std::string& error);
  ~BrokerStore() override;

  std::optional<std::string> serve(const Request& r, Tally& tally) override;

 private:
  BrokerStore(std::unique_ptr<sessionbroker::Client> client, std::vector<sessionbroker::Session> sessions)
      : client_(std::move(client)), sessions_(std::move(sessions)), last_token_(sessions_.size(), 0) {}
  // Counts a process-level grant when the lock's token is new to this process for the session.
  void note_token(const Request& r, std::uint64_t token, Tally& tally);

  std::unique_ptr<sessionbroker::Client> client_;
  std::vector<sessionbroker::Session> sessions_;  // one per user, shared by every thread
  std::mutex mu_;
  std::vector<std::uint64_t> last_token_;  // GUARDED_BY(mu_)
};

}  // namespace app
