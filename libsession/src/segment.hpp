// The process-local view of a mapped segment: creation, validated attach, typed accessors.
//
// Thread safety: after construction a Segment is immutable (the mapping); all synchronisation is
// on the segment's own words. Process safety: see shm_layout/LAYOUT.md.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <sys/stat.h>

#include "sessionbroker/error.hpp"
#include "sessionbroker/shm/layout.hpp"

namespace sessionbroker::detail {

struct CreateOptions {
  shm::Capacities caps{};
  mode_t mode = 0600;  // permissions of the segment object; widened only on request
  int gid = -1;        // group to give the segment to (with mode 0660), or -1
};

class Segment {
 public:
  ~Segment();
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;

  // Creates a new segment exclusively (fails with kAlreadyExists if the name is taken).
  static Result<std::unique_ptr<Segment>> create(const std::string& name, const CreateOptions& opts);
  // Maps an existing segment and validates header, fingerprint and region map before returning.
  static Result<std::unique_ptr<Segment>> open(const std::string& name);
  // Validates a segment image; the one place that decides whether bytes may be trusted.
  // Used by open() and by the fuzz target.
  static Status validate(const void* base, std::uint64_t size);
  // A Segment over memory the caller owns and keeps alive (a segment image in a buffer), for the
  // fuzz target and offline inspection. REQUIRES: validate(base, size) is OK. Never unmaps it.
  static std::unique_ptr<Segment> over_image(void* base, std::uint64_t size);
  static bool remove(const std::string& name);

  const std::string& name() const { return name_; }
  std::uint64_t size() const { return size_; }
  uid_t owner_uid() const { return owner_uid_; }

  shm::SegmentHeader& header() const { return *static_cast<shm::SegmentHeader*>(base_); }
  const shm::Capacities& caps() const { return header().caps; }
  std::uint32_t record_count() const { return caps().max_clients * caps().locks_per_client; }

  shm::ClientSlot& client(std::uint32_t i) const { return at<shm::ClientSlot>(header().regions.clients)[i]; }
  shm::LockRecord& record(std::uint32_t i) const { return at<shm::LockRecord>(header().regions.records)[i]; }
  shm::SessionSlot& session(std::uint32_t i) const { return at<shm::SessionSlot>(header().regions.sessions)[i]; }
  std::uint32_t* index() const { return at<std::uint32_t>(header().regions.index); }
  shm::Block& block(std::uint32_t i) const { return at<shm::Block>(header().regions.blocks)[i]; }
  shm::ClientStats& stats(std::uint32_t client) const { return at<shm::ClientStats>(header().regions.stats)[client]; }

  std::uint32_t first_record_of(std::uint32_t client) const { return client * caps().locks_per_client; }
  std::uint32_t client_of_record(std::uint32_t rec) const { return rec / caps().locks_per_client; }

 private:
  Segment(std::string name, void* base, std::uint64_t size, uid_t owner, bool owns_mapping = true);
  template <class T>
  T* at(std::uint64_t offset) const { return reinterpret_cast<T*>(static_cast<char*>(base_) + offset); }
  void initialise(const shm::Capacities& caps, const shm::Regions& regions);

  std::string name_;
  void* base_;
  std::uint64_t size_;
  uid_t owner_uid_;
  bool owns_mapping_;
};

}  // namespace sessionbroker::detail
