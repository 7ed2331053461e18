#include "shm_backend.hpp"

#include <unistd.h>

#include <fmt/format.h>

namespace sessionbroker::detail {

Result<std::unique_ptr<ShmBackend>> ShmBackend::attach(const std::string& segment_name) {
  auto seg = Segment::open(segment_name);
  if (!seg) return seg.status();
  Store store(**seg);
  auto client = store.attach_client(::getpid());
  if (!client) return client.status();
  return std::unique_ptr<ShmBackend>(new ShmBackend(std::move(*seg), *client));
}

ShmBackend::ShmBackend(std::unique_ptr<Segment> segment, std::uint32_t client)
    : segment_(std::move(segment)), store_(*segment_), client_(client), client_state_(&segment_->client(client).state) {
  const std::uint32_t first = segment_->first_record_of(client);
  for (std::uint32_t i = segment_->caps().locks_per_client; i-- > 0;) free_records_.push_back(first + i);
}

ShmBackend::~ShmBackend() { (void)detach(); }

Status ShmBackend::detach() {
  {
    std::lock_guard lk(records_mu_);
    if (detached_) return {};
    detached_ = true;
  }
  store_.detach_client(client_);
  return {};
}

Status ShmBackend::check_slot(SessionRef ref) const {
  if (ref.slot >= segment_->caps().max_sessions) return Status(ErrorCode::kInvalidArgument, "bad session handle");
  return {};
}

Result<std::uint32_t> ShmBackend::take_record() {
  std::lock_guard lk(records_mu_);
  if (detached_) return Status(ErrorCode::kDetached, "client is detached");
  if (free_records_.empty())
    return Status(ErrorCode::kCapacityExceeded,
                  fmt::format("this process holds or waits for {} locks, the segment's locks_per_client",
                              segment_->caps().locks_per_client));
  const std::uint32_t rec = free_records_.back();
  free_records_.pop_back();
  return rec;
}

void ShmBackend::return_record(std::uint32_t rec) {
  std::lock_guard lk(records_mu_);
  free_records_.push_back(rec);
}

Result<SessionRef> ShmBackend::create_session(std::string_view id, std::uint64_t ttl_ms) {
  return store_.create_session(id, ttl_ms);
}
Result<SessionRef> ShmBackend::open_session(std::string_view id) { return store_.open_session(id); }
Status ShmBackend::destroy_session(SessionRef ref, const Grant* own) {
  if (Status s = check_slot(ref); !s) return s;
  Status st = store_.destroy_session(ref, own);
  if (own) return_record(own->record);
  return st;
}
Result<std::vector<std::string>> ShmBackend::list_sessions() { return store_.list_sessions(); }

Result<Grant> ShmBackend::acquire(SessionRef ref, shm::LockMode mode, Clock::time_point deadline) {
  if (Status s = check_slot(ref); !s) return s;
  auto rec = take_record();
  if (!rec) return rec.status();
  auto g = store_.acquire(client_, *rec, ref, mode, deadline);
  if (!g) return_record(*rec);
  return g;
}

Status ShmBackend::release(SessionRef ref, const Grant& g) {
  if (Status s = check_slot(ref); !s) return s;
  Status st = store_.release(ref, g);
  if (st.code() != ErrorCode::kNotHeld) return_record(g.record);  // kOk and kStaleToken both freed it
  return st;
}

Result<std::optional<std::string>> ShmBackend::read(SessionRef ref, const Grant& g, std::string_view name) {
  if (Status s = check_slot(ref); !s) return s;
  return store_.read(ref, g, name);
}
Result<AttrMap> ShmBackend::read_all(SessionRef ref, const Grant& g) {
  if (Status s = check_slot(ref); !s) return s;
  return store_.read_all(ref, g);
}
Status ShmBackend::commit(SessionRef ref, const Grant& g, const ChangeSet& changes) {
  if (Status s = check_slot(ref); !s) return s;
  return store_.commit(client_, ref, g, changes);
}

std::uint32_t ShmBackend::notification_epoch() { return shm::load(segment_->client(client_).notify); }
void ShmBackend::wait_notification(std::uint32_t seen, Clock::time_point deadline) {
  shm::futex_wait(segment_->client(client_).notify, seen, deadline);
}
void ShmBackend::interrupt_notification_wait() { shm::bump_and_wake(segment_->client(client_).notify); }

}  // namespace sessionbroker::detail
