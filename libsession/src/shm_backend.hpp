// Backend over a shared-memory segment on this host (backend.hpp). Its handles are the segment's
// own: a SessionHandle is a session slot and its generation, a Grant's id its lock record; the
// grant's words are the record's state and revoke words; notifications are the client slot's
// futex word (LAYOUT.md "Client table").
//
// Thread safety: every method may be called from any thread. Process safety: every call that
// could change the segment on the client's behalf without a token check (acquire, commit, create,
// destroy, ...) passes through gate_ (call_gate.hpp), which detach() closes and drains before it
// reclaims the slot; release and reads are fenced by their token instead, and a lane's try with an
// open Kept (Backend::open_kept) by kept_gate_, which detach() drains after every session of the
// caller has closed its Kept. In a process forked after attach every call fails with kDetached
// and neither detach() nor the destructor touches the segment (the slot is the parent's). Errors
// of the segment itself (shm::SegmentCorrupt) become kCorrupt here.
#pragma once

#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "backend.hpp"
#include "call_gate.hpp"
#include "fork_guard.hpp"
#include "segment.hpp"
#include "blob_store.hpp"
#include "lock_table.hpp"
#include "record_pool.hpp"
#include "registry.hpp"

namespace sessionbroker::detail {

class ShmBackend final : public Backend {
 public:
  static Result<std::unique_ptr<ShmBackend>> attach(const std::string& segment_name);
  ~ShmBackend() override;

  void close() override;
  Status detach() override;
  bool evicted() const override {
    return shm::state(*client_slot_) == shm::ClientState::kEvicted;
  }
  std::uint32_t max_value_bytes() const override { return segment_->caps().max_value_bytes; }
  Result<SessionHandle> create_session(std::string_view id, std::uint64_t ttl_ms) override;
  Result<SessionHandle> open_session(std::string_view id) override;
  Result<SessionHandle> open_or_create_session(std::string_view id, std::uint64_t ttl_ms, bool& created) override;
  Status destroy_session(SessionHandle s, const Grant* own) override;
  Result<std::vector<std::string>> list_sessions() override;
  Result<std::vector<std::int32_t>> holder_pids(SessionHandle s) override;
  Result<Grant> acquire(SessionHandle s, Mode mode, Clock::time_point deadline) override;
  Result<Grant> try_acquire(SessionHandle s, Mode mode) override;
  Result<Grant> try_acquire_cheap(SessionHandle s, Mode mode) override;
  Status release(SessionHandle s, const Grant& g) override;
  Result<Grant> try_acquire_kept(SessionHandle s, Mode mode, Kept& keep) override;
  Status release_kept(SessionHandle s, const Grant& g, Kept& keep) override;
  bool drop_kept(Kept& keep) override;
  bool open_kept(Kept& keep) override;
  void close_kept(Kept& keep) override;
  bool quick_calls() const override { return true; }  // a session mutex section (and a futex wake)
  GrantStatus grant_status(const Grant& g) override { return locks_.grant_status(record_grant(g)); }
  GrantWords grant_words(const Grant& g) override {
    return g.id < segment_->record_count() ? grant_words_of(segment_->record(static_cast<std::uint32_t>(g.id)))
                                           : GrantWords{};
  }
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

 private:
  ShmBackend(std::unique_ptr<Segment> segment, std::uint32_t client);
  // Runs `f` (returning a Status or a Result) as one call through the gate.
  template <class F>
  auto call(F&& f) -> decltype(f());
  // The same without the gate, for calls fenced by a token (see shm_backend.cpp).
  template <class F>
  auto call_fenced(F&& f) -> decltype(f());
  // The bodies of try_acquire and release, and of their lane pair where it does not go straight
  // to the fast path (try_acquire_kept, release_kept). `keep` (nullable): the
  // session's kept record (Backend::Kept) is taken before the pool's, and a record that comes free
  // goes back there when it is empty, else to the pool.
  // `fast_only`: an exclusive try takes the fast path or answers kBusy (LockTable::try_acquire).
  [[gnu::noinline]] Result<Grant> try_acquire_with(SessionHandle s, Mode mode, Kept* keep, bool fast_only);  // one copy for all
  template <class F>
  auto call_or_kept(const Kept* keep, F&& f) -> decltype(f());  // call(), or past the gate for an open Kept
  [[gnu::noinline]] Status release_with(SessionHandle s, const Grant& g, Kept* keep);
  Result<std::uint32_t> take_record(Kept* keep = nullptr) {
    if (keep && !keep->empty()) return static_cast<std::uint32_t>(std::exchange(keep->id, Kept{}.id));
    if (auto rec = free_records_.take()) return *rec;
    return out_of_records();
  }
  Status out_of_records() const;
  void return_record(std::uint32_t rec, Kept* keep = nullptr) {
    if (keep && keep->empty()) keep->id = rec;
    else free_records_.give(rec);
  }
  // The segment's names for the library's handles; kInvalidArgument for a handle no store made.
  bool valid(SessionHandle s) const { return s.key < segment_->caps().max_sessions && s.generation <= UINT32_MAX; }
  static SessionRef ref_of(SessionHandle s) {  // REQUIRES: valid(s)
    return {static_cast<std::uint32_t>(s.key), static_cast<std::uint32_t>(s.generation)};
  }
  Result<SessionRef> session_ref(SessionHandle s) const {
    if (!valid(s)) return Status(ErrorCode::kInvalidArgument, "bad session handle");
    return ref_of(s);
  }
  static RecordGrant record_grant(const Grant& g) {
    return {g.id < shm::kNil ? static_cast<std::uint32_t>(g.id) : shm::kNil, g.token};
  }
  static SessionHandle handle(SessionRef r) { return {r.slot, r.gen}; }
  static Grant grant(RecordGrant g) { return {g.token, g.record}; }
  bool forked() const { return forked_since(fork_epoch_); }

  std::unique_ptr<Segment> segment_;
  Registry registry_;  // clients and sessions; the lock table's ClientReclaimer
  LockTable locks_;
  BlobStore blobs_;
  const std::uint32_t client_;
  const std::uint32_t generation_;     // the slot's generation at attach: the slot is ours while it holds
  const std::uint64_t fork_epoch_;
  const shm::ClientSlot* const client_slot_;  // &segment_->client(client_): its state is read on every call
  CallGate gate_;
  CallGate kept_gate_;  // one pass per open Kept (Backend::open_kept); detach() closes and drains it
  std::atomic<bool> cancelled_{false};  // raised by close(): queued requests give up (Caller)
  std::atomic<bool> detached_{false};   // detach() reclaimed (or is reclaiming) the slot
  RecordPool free_records_;  // this client's kFree records
  // One commit of this client at a time, whatever its session: the client slot has one
  // pending_blob (blob_store.cpp, steps 2-4), which a second commit would overwrite, and the
  // first then could not free its chain when its publish fails (a leak until the segment is
  // recreated). Held across BlobStore::commit.
  std::mutex commit_mu_;
};

}  // namespace sessionbroker::detail
