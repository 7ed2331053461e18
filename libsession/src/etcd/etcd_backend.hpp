// Backend over an etcd cluster (backend.hpp): the same lock protocol for processes on many hosts.
// Selected by a store address "etcd://HOST:PORT[,HOST:PORT...]/PREFIX" (address.hpp).
//
// Key space, every key under "PREFIX/" (docs/etcd.md has the whole protocol with its crash table):
//   PREFIX/c/<host>/<lease>       one per attached process: "pid start_time", on the process lease.
//                                 A broker on <host> watches these and revokes a dead one's lease.
//   PREFIX/s/<hex id>             one per session: its attributes and TTL (encoded below), on the
//                                 session's own lease (idle expiry: touching renews it). Its
//                                 create_revision is the session's generation.
//   PREFIX/s/<hex id>/q/<lease>.<n>  one per request queued on or holding the session: "S" or
//                                 "X", on the process lease; <n> numbers the process's requests,
//                                 so a name is never used twice. Its create_revision is the
//                                 grant's token: strictly increasing across the store, never reused.
// Lock protocol (the queue is the keys of PREFIX/s/<hex id>/q/ by create_revision):
//   acquire   opens a watch on the session's keys *from now* (so it is synced: a watch that starts
//             at or below the current revision is served by etcd's 100 ms unsynced loop), then one
//             txn: if the session key still has its generation and this process has no queue key,
//             put the queue key and read the session's keys. The request is granted once no key
//             ahead of it (smaller create_revision) is incompatible (X, or any key for an X
//             request): FIFO, consecutive shared requests granted together, no barging.
//   revoke    a holder's watch sees a newer incompatible key: that key *is* the revoke request
//             (the grant's revoke word is raised, the revoke thread woken).
//   release   a plain delete of the request's queue key: its name is this request's alone, so
//             the delete can remove nothing else (not a newer request of the same process), and
//             "nothing deleted" says the grant was lost. A delete costs etcd less than a txn.
//   fencing   reads, commits, expiry changes and destroys are txns that compare the queue key's
//             create_revision to the token: a stale holder gets kStaleToken, never data, never a
//             write.
//   loss      the queue key deleted by anyone else (destroy, break-lock, the lease expired or was
//             revoked), or the session key gone: the grant's state word leaves kGrantHeldWord.
//   crash     the process lease expires (TTL kProcessLeaseTtl + up to one renewal period) and takes
//             every queue key of the process with it; a broker on the host revokes it at once.
//
// Thread safety: as Backend. Watch callbacks run on the Watcher's thread and only update a
// session's in-process view under its mutex (SessionView below); calls block on its condition.
// Process safety: in a forked child every call fails with kDetached and nothing of the parent's
// gRPC state is touched (it is leaked, never destroyed: its threads do not exist in the child).
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backend.hpp"
#include "call_gate.hpp"
#include "etcd/address.hpp"
#include "etcd/shared_words.hpp"
#include "etcd/etcd_client.hpp"
#include "etcd/keep_alive.hpp"
#include "etcd/watcher.hpp"

namespace sessionbroker::detail::etcd {

inline constexpr std::int64_t kProcessLeaseTtlSeconds = 2;
inline constexpr std::uint64_t kDefaultSessionTtlMs = 30 * 60 * 1000;  // as session-broker's --default-ttl
// The keys of the store at `prefix` (the layout above).
struct Keys {
  std::string prefix;
  std::string client(std::string_view host, std::int64_t lease) const;
  std::string clients_of(std::string_view host) const;  // the prefix of a host's client keys
  std::string sessions() const { return prefix + "/s/"; }
  std::string session(std::string_view id) const;
  static std::string session_range_end(const std::string& session_key) { return session_key + "0"; }
  static std::string queue_prefix(const std::string& session_key) { return session_key + "/q/"; }
  // The queue key of a process's request number `request` (docs/etcd.md "Key space").
  static std::string queue(const std::string& session_key, std::int64_t lease, std::uint64_t request);
  // The id of a session key, or nullopt for any other key under sessions().
  std::optional<std::string> id_of(std::string_view key) const;
};

// A session's value: its TTL and attributes. decode() is kCorrupt for anything encode() did not make.
struct SessionValue {
  std::uint64_t ttl_ms = 0;
  AttrMap attrs;
  std::string encode() const;
  static Result<SessionValue> decode(std::string_view bytes);
};

// What the store says of one session, as a tool sees it (sessionctl dump, the claim tests).
struct SessionInfo {
  struct Entry {
    std::int64_t token;  // create_revision of the queue key
    bool exclusive;
    std::int64_t lease;
    bool granted;
  };
  std::string id;
  std::int64_t generation = 0;
  std::vector<Entry> queue;  // by token; the granted ones first
  SessionValue value;
};
// Reads a session and its queue in one consistent range.
Result<SessionInfo> read_session(Client& client, const Keys& keys, std::string_view id);
// The pid each process lease registered (PREFIX/c/<host>/<lease> of every host), by lease.
Result<std::map<std::int64_t, std::int32_t>> registered_pids(Client& client, const Keys& keys);

class EtcdBackend final : public Backend {
 public:
  // `words`: where to keep the shared words (the agent's memfd); null: in this object. `owner`:
  // the process the locks are for, as registered for brokers and tools (0: this one; the agent
  // names its application).
  static Result<std::unique_ptr<EtcdBackend>> attach(const std::string& address, SharedWords* words = nullptr,
                                                     pid_t owner = 0);
  ~EtcdBackend() override;

  void close() override;
  Status detach() override;
  bool evicted() const override { return false; }  // a lost lease is replaced (see grant_words)
  std::uint32_t max_value_bytes() const override { return kMaxValueBytes; }
  Result<SessionHandle> create_session(std::string_view id, std::uint64_t ttl_ms) override;
  Result<SessionHandle> open_session(std::string_view id) override;
  Result<SessionHandle> open_or_create_session(std::string_view id, std::uint64_t ttl_ms, bool& created) override;
  Status destroy_session(SessionHandle s, const Grant* own) override;
  Result<std::vector<std::string>> list_sessions() override;
  Result<std::vector<std::int32_t>> holder_pids(SessionHandle s) override;
  Result<Grant> acquire(SessionHandle s, Mode mode, Clock::time_point deadline) override;
  Result<Grant> try_acquire(SessionHandle s, Mode mode) override;
  Status release(SessionHandle s, const Grant& g) override;
  bool quick_calls() const override { return false; }  // every call is a round trip to the cluster
  GrantStatus grant_status(const Grant& g) override;
  GrantWords grant_words(const Grant& g) override;
  void touch(SessionHandle s) override;
  Status set_ttl(SessionHandle s, const Grant& g, std::uint64_t ttl_ms) override;
  Status touch(SessionHandle s, const Grant& g) override;
  Result<std::optional<std::uint64_t>> ttl_remaining(SessionHandle s, const Grant& g) override;
  Result<std::optional<std::string>> read(SessionHandle s, const Grant& g, std::string_view name,
                                          ReadCopySlot* copy) override;
  Result<AttrMap> read_all(SessionHandle s, const Grant& g, ReadCopySlot* copy) override;
  Status commit(SessionHandle s, const Grant& g, const ChangeSet& changes, ReadCopySlot* copy) override;
  std::uint32_t notification_epoch() override;
  void wait_notification(std::uint32_t seen, Clock::time_point deadline) override;
  void interrupt_notification_wait() override;

  std::int64_t lease_id() const;  // the process lease now (tests, tools)

 private:
  struct SessionView;

  EtcdBackend(Address address, std::unique_ptr<Client> client, SharedWords* words, pid_t owner);
  template <class F>
  auto call(F&& f) -> decltype(f());
  Result<std::shared_ptr<SessionView>> view(SessionHandle s);
  Result<SessionHandle> handle_for(std::string_view id, std::int64_t generation, std::int64_t lease);
  Result<std::int64_t> process_lease();
  void on_lease_lost(std::int64_t lease, const std::string& why);
  Result<Grant> request(SessionHandle s, Mode mode, Clock::time_point deadline, bool wait);
  Status open_watch(const std::shared_ptr<SessionView>& v);
  void close_watch(const std::shared_ptr<SessionView>& v);
  void finish_request(const std::shared_ptr<SessionView>& v);
  void keep_session_lease(SessionView& v);
  void stop_keeping_session_lease(SessionView& v);
  // Fenced read of the session key: kStaleToken unless `g` still holds.
  Result<mvccpb::KeyValue> fenced_session(SessionView& v, const Grant& g);
  void lost_by_store(SessionView& v, const Grant& g);  // a fenced txn found `g` gone: its words say lost
  Result<SessionValue> fenced_value(SessionHandle s, const Grant& g);
  etcdserverpb::TxnRequest fenced_write(SessionView& v, const Grant& g, std::int64_t mod_revision);
  Result<std::uint32_t> take_slot();
  void free_slot(std::uint32_t slot);
  void notify();
  bool forked() const;

  const Address address_;
  const Keys keys_;
  const std::string host_;
  const pid_t owner_;
  const std::uint64_t fork_epoch_;
  std::unique_ptr<Client> client_;

  std::mutex lease_mu_;
  std::int64_t lease_ = 0;  // GUARDED_BY(lease_mu_): 0 when lost (a new one is granted on demand)

  std::mutex views_mu_;
  std::vector<std::shared_ptr<SessionView>> views_;  // GUARDED_BY(views_mu_), index = SessionHandle::key
  std::map<std::string, std::uint64_t, std::less<>> view_of_id_;  // GUARDED_BY(views_mu_): latest view per id

  std::unique_ptr<SharedWords> own_words_;  // when not given one
  SharedWords* const words_;
  GrantSlot* const slots_;
  std::mutex slots_mu_;
  std::vector<std::uint32_t> free_slots_;  // GUARDED_BY(slots_mu_)

  CallGate gate_;
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> detached_{false};
  std::atomic<std::uint64_t> requests_{0};  // numbers the queue keys' names (Keys::queue)

  // Declared last: destroyed first, so no callback runs into a destroyed member.
  std::unique_ptr<KeepAlive> keep_alive_;
  std::unique_ptr<Watcher> watcher_;
};

}  // namespace sessionbroker::detail::etcd
