// Backend over a shared-memory segment on this host (the only backend so far).
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "backend.hpp"
#include "segment.hpp"
#include "store.hpp"

namespace sessionbroker::detail {

class ShmBackend final : public Backend {
 public:
  static Result<std::unique_ptr<ShmBackend>> attach(const std::string& segment_name);
  ~ShmBackend() override;

  Status detach() override;
  bool evicted() const override {
    return shm::load(*client_state_) == static_cast<std::uint32_t>(shm::ClientState::kEvicted);
  }
  std::uint32_t max_value_bytes() const override { return segment_->caps().max_value_bytes; }
  Result<SessionRef> create_session(std::string_view id, std::uint64_t ttl_ms) override;
  Result<SessionRef> open_session(std::string_view id) override;
  Status destroy_session(SessionRef ref, const Grant* own) override;
  Result<std::vector<std::string>> list_sessions() override;
  Result<Grant> acquire(SessionRef ref, shm::LockMode mode, Clock::time_point deadline) override;
  Status release(SessionRef ref, const Grant& g) override;
  GrantStatus grant_status(const Grant& g) override { return store_.grant_status(g); }
  const shm::LockRecord* grant_record(const Grant& g) override {
    return g.record < segment_->record_count() ? &segment_->record(g.record) : nullptr;
  }
  void touch(SessionRef ref) override { store_.touch(ref); }
  Result<std::optional<std::string>> read(SessionRef ref, const Grant& g, std::string_view name) override;
  Result<AttrMap> read_all(SessionRef ref, const Grant& g) override;
  Status commit(SessionRef ref, const Grant& g, const ChangeSet& changes) override;
  std::uint32_t notification_epoch() override;
  void wait_notification(std::uint32_t seen, Clock::time_point deadline) override;
  void interrupt_notification_wait() override;

 private:
  ShmBackend(std::unique_ptr<Segment> segment, std::uint32_t client);
  Result<std::uint32_t> take_record();
  void return_record(std::uint32_t rec);
  Status check_slot(SessionRef ref) const;

  std::unique_ptr<Segment> segment_;
  Store store_;
  const std::uint32_t client_;
  std::uint32_t* const client_state_;  // &segment_->client(client_).state, read on every call
  std::mutex records_mu_;
  std::vector<std::uint32_t> free_records_;  // GUARDED_BY(records_mu_): this client's kFree records
  bool detached_ = false;                    // GUARDED_BY(records_mu_)
};

}  // namespace sessionbroker::detail
