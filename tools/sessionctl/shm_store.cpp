// AdminStore over a shared-memory segment: the segment's own admin views (admin.hpp, check.hpp).
//
// Process safety: it maps the segment without attaching (no client slot, no lock record), so it
// works when the client table is full and never joins a queue. It takes the same mutexes as the lock
// protocol, one at a time: the registry mutex while it copies the client table, each session's
// mutex for a snapshot, the allocator's for the free count; it writes nothing to the segment
// except through the admin actions and what the robust-mutex repair would write anyway.
#include <memory>
#include <string>

#include <fmt/format.h>

#include "admin.hpp"
#include "admin_store.hpp"
#include "blob_store.hpp"
#include "check.hpp"
#include "guards.hpp"
#include "registry.hpp"
#include "segment.hpp"
#include "stats.hpp"

namespace sessionctl {
namespace {

namespace detail = sessionbroker::detail;
namespace shm = sessionbroker::shm;
using sessionbroker::ErrorCode;
using sessionbroker::Result;
using sessionbroker::Status;

SessionRow to_row(const detail::SessionSnapshot& s, detail::SessionRef ref) {
  SessionRow r{.id = s.id, .mode = s.mode, .version = s.version, .idle_ms = s.idle_ms, .ttl_ms = s.ttl_ms,
               .ref = {ref.slot, ref.gen}};
  for (const auto& h : s.holders) r.holders.push_back({h.client, h.pid, h.mode, h.token, h.revoke});
  for (const auto& w : s.queue) r.queue.push_back({w.client, w.pid, w.mode});
  for (const auto& a : s.attrs) r.attrs.push_back({a.name, a.size});
  return r;
}

class ShmStore final : public AdminStore {
 public:
  ShmStore(std::string name, std::unique_ptr<detail::Segment> seg) : name_(std::move(name)), seg_(std::move(seg)) {}

  Result<DumpModel> dump() override {
    DumpModel m{.store = name_};
    detail::Admin admin(*seg_);
    for (std::uint32_t slot = 0; slot < seg_->caps().max_sessions; ++slot)
      if (auto snap = admin.snapshot(slot)) m.sessions.push_back(to_row(*snap, {slot, 0}));
    m.clients = copy_clients();
    m.free_blocks = detail::BlobStore(*seg_).free_blocks();
    m.next_token = shm::load(seg_->header().next_token, std::memory_order_relaxed);
    return m;
  }

  // The snapshot is taken by slot, so its id is compared: the slot may have gone to another
  // session since the lookup.
  Result<SessionRow> session(const std::string& id) override {
    auto ref = detail::Registry(*seg_).open_session(id);
    if (!ref) return ref.status();
    auto snap = detail::Admin(*seg_).snapshot(ref->slot);
    if (!snap || snap->id != id) return Status(ErrorCode::kNotFound, fmt::format("no session '{}'", id));
    return to_row(*snap, *ref);
  }

  Result<std::vector<ClientRow>> clients_of(pid_t pid) override {
    std::vector<ClientRow> out;
    for (auto& c : copy_clients())
      if (c.pid == pid && c.state == ClientState::kLive) out.push_back(std::move(c));
    return out;
  }

  Result<std::vector<std::uint64_t>> break_locks(const SessionRow& s) override {
    return detail::Admin(*seg_).break_session_locks(ref_of(s));
  }

  Status expire(const SessionRow& s) override { return detail::Registry(*seg_).destroy_session(ref_of(s), nullptr); }

  Result<std::size_t> evict(const ClientRow& c) override {
    auto n = detail::Admin(*seg_).evict_client(static_cast<std::uint32_t>(c.id), static_cast<std::uint32_t>(c.generation));
    if (!n) return n.status();
    return static_cast<std::size_t>(*n);
  }

  Result<CheckOutput> check() override {
    const detail::CheckReport r = detail::check_segment(*seg_);
    CheckOutput out;
    out.summary = fmt::format(
        "segment {}: {} sessions, {} clients, {} holders, {} waiters; blocks: {} in blobs, {} pending, {} free of {}",
        name_, r.sessions, r.clients, r.holders, r.waiters, r.blocks_used, r.blocks_pending, r.blocks_free,
        seg_->caps().block_count);
    out.notes = r.notes;
    for (const auto& v : r.violations) out.violations.push_back({v.invariant, v.detail});
    return out;
  }

 private:
  static detail::SessionRef ref_of(const SessionRow& s) {
    return {static_cast<std::uint32_t>(s.ref.a), static_cast<std::uint32_t>(s.ref.b)};
  }

  // Under the registry mutex, which attach, detach and reclaim hold: a slot is seen whole, its pid
  // and generation of the same attachment.
  std::vector<ClientRow> copy_clients() {
    std::vector<ClientRow> rows;
    auto guard = detail::registry_guard(*seg_);
    for (std::uint32_t i = 0; i < seg_->caps().max_clients; ++i) {
      const auto& c = seg_->client(i);
      const auto state = shm::state(c);
      if (state == ClientState::kFree) continue;
      const auto counts = detail::counters_since_attach(*seg_, i);
      const auto at = [&](shm::Counter k) { return counts[static_cast<std::size_t>(k)]; };
      rows.push_back({.id = i, .pid = c.pid, .state = state, .grants = at(shm::Counter::kGrants),
                      .waits = at(shm::Counter::kHandoffs) + at(shm::Counter::kTimeouts), .generation = c.generation});
    }
    return rows;
  }

  const std::string name_;
  const std::unique_ptr<detail::Segment> seg_;
};

}  // namespace

Result<std::unique_ptr<AdminStore>> make_shm_store(const std::string& name) {
  auto seg = detail::Segment::open(name);
  if (!seg) return seg.status();
  return std::unique_ptr<AdminStore>(std::make_unique<ShmStore>(name, std::move(*seg)));
}

}  // namespace sessionctl
