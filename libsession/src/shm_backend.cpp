#include "shm_backend.hpp"

#include <unistd.h>

#include <optional>

#include <fmt/format.h>

#include "fork_guard.hpp"
#include "test_point.hpp"

namespace sessionbroker::detail {
namespace {

Status gone(bool forked) {
  return Status(ErrorCode::kDetached, forked ? "client handle used in a forked child: call Client::attach in the child"
                                             : "client is detached");
}

}  // namespace

Result<std::unique_ptr<ShmBackend>> ShmBackend::attach(const std::string& segment_name) {
  auto seg = Segment::open(segment_name);
  if (!seg) return seg.status();
  try {
    Registry registry(**seg);
    if (registry.retired()) return retired_status();
    auto client = registry.attach_client(::getpid());
    if (!client) return client.status();
    return std::unique_ptr<ShmBackend>(new ShmBackend(std::move(*seg), *client));
  } catch (const shm::SegmentCorrupt& e) {
    return Status(ErrorCode::kCorrupt, fmt::format("segment '{}': {}", segment_name, e.what()));
  }
}

ShmBackend::ShmBackend(std::unique_ptr<Segment> segment, std::uint32_t client)
    : segment_(std::move(segment)),
      registry_(*segment_),
      locks_(*segment_, registry_),
      blobs_(*segment_),
      client_(client),
      generation_(segment_->client(client).generation),
      fork_epoch_(fork_epoch()),
      client_slot_(&segment_->client(client)),
      free_records_(segment_->first_record_of(client), segment_->caps().locks_per_client) {}

ShmBackend::~ShmBackend() { (void)detach(); }

// Through the gate, unless `keep` is an open Kept: its caller's session stands for the gate then
// (Backend::open_kept), and the call skips the gate's two read-modify-writes; a closed gate still
// stops it (a plain load: the guarantee that matters, no reclaim under it, is kept_gate_'s).
template <class F>
auto ShmBackend::call_or_kept(const Kept* keep, F&& f) -> decltype(f()) {
  if (forked()) return gone(true);
  std::optional<CallGate::Pass> pass;
  if (!keep || !keep->open) {
    if (!pass.emplace(gate_).entered()) return gone(false);
  } else if (gate_.closed()) {
    return gone(false);
  }
  try {
    return f();
  } catch (const shm::SegmentCorrupt& e) {
    return Status(ErrorCode::kCorrupt, e.what());
  }
}

template <class F>
auto ShmBackend::call(F&& f) -> decltype(f()) {
  return call_or_kept(nullptr, std::forward<F>(f));
}

// Calls that act only through a token check under the session mutex (release, reads) skip the
// gate's two read-modify-writes: after a reclaim their record is free or another owner's, with
// another token, so they change nothing and return kNotHeld or kStaleToken. A forked child still
// never gets through.
template <class F>
auto ShmBackend::call_fenced(F&& f) -> decltype(f()) {
  if (forked()) return gone(true);
  try {
    return f();
  } catch (const shm::SegmentCorrupt& e) {
    return Status(ErrorCode::kCorrupt, e.what());
  }
}

// Calls already in flight finish (a commit publishes or gives its blocks back, a waiter withdraws)
// before close() returns; then nothing of this process touches the slot's records or blob.
void ShmBackend::close() {
  if (forked()) return;
  if (gate_.close()) {
    cancelled_.store(true, std::memory_order_release);
    const std::uint32_t first = segment_->first_record_of(client_);
    for (std::uint32_t i = 0; i < segment_->caps().locks_per_client; ++i) shm::bump_and_wake(segment_->record(first + i).wake);
    test_point(TestPoint::kDetachDraining);
  }
  gate_.drain();
}

Status ShmBackend::detach() {
  if (forked()) return {};
  close();
  (void)kept_gate_.close();
  kept_gate_.drain();  // every open Kept closed: no try through one is in flight, none can start
  if (detached_.exchange(true)) return {};
  try {
    registry_.detach_client(client_, generation_);
  } catch (const shm::SegmentCorrupt& e) {
    return Status(ErrorCode::kCorrupt, e.what());
  }
  return {};
}

static_assert(kMaxSessionIdBytes == shm::kMaxSessionIdBytes && kMaxAttrNameBytes == shm::kMaxAttrNameBytes,
              "the library's limits are the segment's");

Status ShmBackend::out_of_records() const {
  return Status(ErrorCode::kCapacityExceeded,
                fmt::format("this process holds or waits for {} locks, the segment's locks_per_client",
                            segment_->caps().locks_per_client));
}

// Process memory only (the kept record is kFree in the segment, like the pool's): nothing to do in
// a forked child, whose pool is a copy nobody uses.
bool ShmBackend::drop_kept(Kept& keep) {
  if (keep.empty()) return false;
  const auto rec = static_cast<std::uint32_t>(std::exchange(keep.id, Kept{}.id));
  if (!forked()) free_records_.give(rec);
  return true;
}

bool ShmBackend::open_kept(Kept& keep) {
  if (!keep.open && !forked()) keep.open = kept_gate_.try_enter();
  return keep.open;
}

void ShmBackend::close_kept(Kept& keep) {
  (void)drop_kept(keep);
  if (std::exchange(keep.open, false) && !forked()) kept_gate_.leave();
}

namespace {

shm::LockMode lock_mode(Mode m) { return m == Mode::kExclusive ? shm::LockMode::kExclusive : shm::LockMode::kShared; }

}  // namespace

Result<SessionHandle> ShmBackend::create_session(std::string_view id, std::uint64_t ttl_ms) {
  return call([&]() -> Result<SessionHandle> {
    auto ref = registry_.create_session(id, ttl_ms);
    if (!ref) return ref.status();
    return handle(*ref);
  });
}
Result<SessionHandle> ShmBackend::open_session(std::string_view id) {
  return call([&]() -> Result<SessionHandle> {
    auto ref = registry_.open_session(id);
    if (!ref) return ref.status();
    return handle(*ref);
  });
}
Result<SessionHandle> ShmBackend::open_or_create_session(std::string_view id, std::uint64_t ttl_ms, bool& created) {
  created = false;
  return call([&]() -> Result<SessionHandle> {
    auto ref = registry_.open_or_create_session(id, ttl_ms, created);
    if (!ref) return ref.status();
    return handle(*ref);
  });
}
Status ShmBackend::destroy_session(SessionHandle s, const Grant* own) {
  auto ref = session_ref(s);
  if (!ref) return ref.status();
  return call([&] {
    const RecordGrant g = own ? record_grant(*own) : RecordGrant{};
    Status st = registry_.destroy_session(*ref, own ? &g : nullptr);
    // The record is free now unless it still holds (another error than a stale token).
    if (own && (st.is_ok() || st.code() == ErrorCode::kStaleToken)) return_record(g.record);
    return st;
  });
}
Result<std::vector<std::string>> ShmBackend::list_sessions() {
  return call([&]() -> Result<std::vector<std::string>> { return registry_.list_sessions(); });
}

Result<std::vector<std::int32_t>> ShmBackend::holder_pids(SessionHandle s) {
  auto ref = session_ref(s);
  if (!ref) return ref.status();
  return call([&]() -> Result<std::vector<std::int32_t>> { return locks_.holder_pids(*ref); });
}

Result<Grant> ShmBackend::acquire(SessionHandle s, Mode mode, Clock::time_point deadline) {
  auto ref = session_ref(s);
  if (!ref) return ref.status();
  return call([&]() -> Result<Grant> {
    auto rec = take_record();
    if (!rec) return rec.status();
    const Caller caller{generation_, &cancelled_};
    test_point(TestPoint::kQueueing);
    auto g = locks_.acquire(client_, *rec, *ref, lock_mode(mode), deadline, &caller);
    if (!g) {
      return_record(*rec);
      return g.status();
    }
    return grant(*g);
  });
}

Result<Grant> ShmBackend::try_acquire(SessionHandle s, Mode mode) { return try_acquire_with(s, mode, nullptr, false); }
Result<Grant> ShmBackend::try_acquire_cheap(SessionHandle s, Mode mode) { return try_acquire_with(s, mode, nullptr, true); }

// The lane's claim as it usually comes: exclusive, with the session's kept record and an open Kept
// (so no gate to pass, as in call_or_kept), straight to the fast path with no Result built on the
// way. Anything else, and a forked child or a closed gate, goes the general way, which answers the
// same; a claim the fast path turns down is kBusy at once, as try_acquire(fast_only) answers it.
Result<Grant> ShmBackend::try_acquire_kept(SessionHandle s, Mode mode, Kept& keep) {
  if (mode != Mode::kExclusive || !keep.open || keep.empty() || !valid(s) || forked() || gate_.closed())
    return try_acquire_with(s, mode, &keep, true);
  const auto rec = static_cast<std::uint32_t>(keep.id);  // stays kept unless granted
  const Caller caller{generation_, &cancelled_};
  std::uint64_t token = 0;
  Status why;
  try {
    switch (locks_.claim_fast(client_, rec, ref_of(s), &caller, token, why)) {
      case LockTable::FastClaim::kGranted:
        keep.id = Kept{}.id;
        return Grant{token, rec};
      case LockTable::FastClaim::kGone: return why;
      case LockTable::FastClaim::kNotIdle: return LockTable::not_idle();
    }
  } catch (const shm::SegmentCorrupt& e) {
    return Status(ErrorCode::kCorrupt, e.what());
  }
  return LockTable::not_idle();  // not reached: the switch answers every FastClaim
}
Result<Grant> ShmBackend::try_acquire_with(SessionHandle s, Mode mode, Kept* keep, bool fast_only) {
  auto ref = session_ref(s);
  if (!ref) return ref.status();
  return call_or_kept(keep, [&]() -> Result<Grant> {
    auto rec = take_record(keep);
    if (!rec) return rec.status();
    const Caller caller{generation_, &cancelled_};
    auto g = locks_.try_acquire(client_, *rec, *ref, lock_mode(mode), &caller, fast_only);
    if (!g) {
      return_record(*rec, keep);  // untouched (busy) or withdrawn to kFree
      return g.status();
    }
    return grant(*g);
  });
}

Status ShmBackend::release(SessionHandle s, const Grant& g) { return release_with(s, g, nullptr); }
// The lane's release of a grant that owns the session's fast word, without the general path's
// Results; any other (absorbed by a mutex holder, broken, a forked child) goes the general way.
Status ShmBackend::release_kept(SessionHandle s, const Grant& g, Kept& keep) {
  if (valid(s) && g.id < segment_->record_count() && !forked()) {
    try {
      const RecordGrant rg = record_grant(g);
      if (locks_.release_fast(ref_of(s), rg)) {
        return_record(rg.record, &keep);
        return {};
      }
    } catch (const shm::SegmentCorrupt& e) {
      return Status(ErrorCode::kCorrupt, e.what());
    }
  }
  return release_with(s, g, &keep);
}
Status ShmBackend::release_with(SessionHandle s, const Grant& g, Kept* keep) {
  auto ref = session_ref(s);
  if (!ref) return ref.status();
  return call_fenced([&] {
    const RecordGrant rg = record_grant(g);
    Status st = locks_.release(*ref, rg);
    if (st.code() != ErrorCode::kNotHeld) return_record(rg.record, keep);  // kOk and kStaleToken both freed it
    return st;
  });
}

void ShmBackend::touch(SessionHandle s) {
  if (auto ref = session_ref(s)) (void)call([&] { locks_.touch(*ref); return Status{}; });
}

Status ShmBackend::set_ttl(SessionHandle s, const Grant& g, std::uint64_t ttl_ms) {
  auto ref = session_ref(s);
  if (!ref) return ref.status();
  return call([&] { return locks_.set_ttl(*ref, record_grant(g), ttl_ms); });
}
Status ShmBackend::touch(SessionHandle s, const Grant& g) {
  auto ref = session_ref(s);
  if (!ref) return ref.status();
  return call([&] { return locks_.touch(*ref, record_grant(g)); });
}
Result<std::optional<std::uint64_t>> ShmBackend::ttl_remaining(SessionHandle s, const Grant& g) {
  auto ref = session_ref(s);
  if (!ref) return ref.status();
  return call([&] { return locks_.ttl_remaining(*ref, record_grant(g)); });
}

namespace {
// A thread lock's ReadCopy on this backend: the blob store's copy of the session's blob.
struct ShmReadCopy final : ReadCopy {
  BlobCopy blob;
};
// The slot is a lock of a session of this backend, so whatever it holds is a ShmReadCopy. No slot
// (a shared lock's read): no copy.
BlobCopy* blob_copy(ReadCopySlot* slot) {
  if (!slot) return nullptr;
  if (!*slot) *slot = std::make_unique<ShmReadCopy>();
  return &static_cast<ShmReadCopy&>(**slot).blob;
}
}  // namespace

Result<std::optional<std::string>> ShmBackend::read(SessionHandle s, const Grant& g, std::string_view name,
                                                    ReadCopySlot* copy) {
  auto ref = session_ref(s);
  if (!ref) return ref.status();
  return call_fenced([&] { return blobs_.read(*ref, record_grant(g), name, blob_copy(copy)); });
}
Result<AttrMap> ShmBackend::read_all(SessionHandle s, const Grant& g, ReadCopySlot* copy) {
  auto ref = session_ref(s);
  if (!ref) return ref.status();
  return call_fenced([&] { return blobs_.read_all(*ref, record_grant(g), blob_copy(copy)); });
}
Status ShmBackend::commit(SessionHandle s, const Grant& g, const ChangeSet& changes, ReadCopySlot* copy) {
  auto ref = session_ref(s);
  if (!ref) return ref.status();
  return call([&] {
    std::lock_guard one_at_a_time(commit_mu_);
    return blobs_.commit(client_, generation_, *ref, record_grant(g), changes, blob_copy(copy));
  });
}

// The notify word is only waited on and bumped: harmless after a detach, so no gate.
std::uint32_t ShmBackend::notification_epoch() { return shm::load(segment_->client(client_).notify); }
void ShmBackend::wait_notification(std::uint32_t seen, Clock::time_point deadline) {
  shm::futex_wait(segment_->client(client_).notify, seen, deadline);
}
void ShmBackend::interrupt_notification_wait() { shm::bump_and_wake(segment_->client(client_).notify); }

}  // namespace sessionbroker::detail
