// The store as sessionctl's administrator commands see it (dump, check, break-lock, expire,
// evict-client), in the same words for a shared-memory segment (shm_store.cpp) and an etcd store
// (etcd_store.cpp). open_admin_store() is the one place that picks one by the address; the commands
// above it (their confirmation, descriptions and output) do not know which they have.
//
// An administrator is not a client: neither implementation attaches. On a segment it maps the
// object and takes the same mutexes as the lock protocol; on etcd it reads and writes the key space
// of docs/etcd.md directly, each change a transaction fenced like the library's own.
//
// Everything read is a snapshot: a lock granted between a read and a remedy is broken as well, and
// the remedies report what they actually did.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sessionbroker/error.hpp"
#include "sessionbroker/shm/constants.hpp"

namespace sessionctl {

using LockMode = sessionbroker::shm::LockMode;
using ClientState = sessionbroker::shm::ClientState;

struct HolderRow {
  std::int64_t client;  // the client slot (segment) or the process lease (etcd)
  std::int32_t pid;     // 0 when unknown (etcd: a lease with no client key)
  LockMode mode;
  std::uint64_t token;
  bool revoke;  // a revoke request is pending
};

struct WaiterRow {
  std::int64_t client;
  std::int32_t pid;
  LockMode mode;
};

struct AttrRow {
  std::string name;
  std::uint64_t size;
};

// The backend's own reference to the session read (segment: slot and generation; etcd: the
// session key's create_revision), so a remedy acts on that session and never on one made again
// under the same id since.
struct StoreRef {
  std::uint64_t a = 0, b = 0;
};

struct SessionRow {
  std::string id{};
  LockMode mode = LockMode::kNone;  // of the current holders
  std::optional<std::uint64_t> version{};  // commits so far (segment only)
  std::vector<HolderRow> holders{};       // no particular order
  std::vector<WaiterRow> queue{};        // FIFO: first is granted next
  std::vector<AttrRow> attrs{};        // by name
  std::optional<std::uint64_t> idle_ms{};  // since the last grant, release or unlock (segment only)
  std::uint64_t ttl_ms = 0;              // idle expiry; 0 = the store's default (etcd) or never (segment)
  StoreRef ref{};
};

struct ClientRow {
  std::int64_t id = 0;  // the client slot (segment) or the process lease (etcd)
  std::string host{};  // etcd: the host id it registered under; empty on a segment
  std::int32_t pid = 0;
  ClientState state = ClientState::kLive;
  std::optional<std::uint64_t> grants{}, waits{};  // since attach (segment only)
  std::uint64_t generation = 0;                // segment: the slot's attachment (evict compares it)
};

// Every session and client. Each session is consistent in itself; on a segment sessions are not
// frozen together, on etcd each is read at its own revision.
struct DumpModel {
  std::string store{};  // the address as given
  bool etcd = false;
  std::vector<SessionRow> sessions{};
  std::vector<ClientRow> clients{};
  std::optional<std::uint32_t> free_blocks{};  // segment only
  std::uint64_t next_token = 0;  // segment: the next grant's token; etcd: the least it can be (revision + 1)
};

struct CheckOutput {
  struct Violation {
    std::string invariant;  // its name in LAYOUT.md or docs/etcd.md "Invariants"
    std::string detail;
  };
  std::string summary;  // one line: what was examined
  std::vector<std::string> notes;
  std::vector<Violation> violations;
};

class AdminStore {
 public:
  virtual ~AdminStore() = default;

  virtual sessionbroker::Result<DumpModel> dump() = 0;
  // kNotFound when there is no such session.
  virtual sessionbroker::Result<SessionRow> session(const std::string& id) = 0;
  // The clients registered by `pid` (on etcd one per host that has such a pid).
  virtual sessionbroker::Result<std::vector<ClientRow>> clients_of(pid_t pid) = 0;

  // Breaks every lock held on the session read as `s` (the holders' tokens go stale, the first
  // waiter is granted). Returns the tokens broken.
  virtual sessionbroker::Result<std::vector<std::uint64_t>> break_locks(const SessionRow& s) = 0;
  // Removes the session now, breaking its locks; queued requests fail.
  virtual sessionbroker::Status expire(const SessionRow& s) = 0;
  // Breaks the client's locks and cancels its requests. Returns how many (locks plus requests).
  virtual sessionbroker::Result<std::size_t> evict(const ClientRow& c) = 0;

  // Verifies the store's invariants while clients keep working.
  virtual sessionbroker::Result<CheckOutput> check() = 0;
};

// The one dispatch point: etcd://... is an etcd store, anything else a segment name.
sessionbroker::Result<std::unique_ptr<AdminStore>> open_admin_store(const std::string& address);

sessionbroker::Result<std::unique_ptr<AdminStore>> make_shm_store(const std::string& name);  // shm_store.cpp
#if defined(SESSIONBROKER_WITH_ETCD)
sessionbroker::Result<std::unique_ptr<AdminStore>> make_etcd_store(const std::string& address);  // etcd_store.cpp
#endif

}  // namespace sessionctl
