// The process-local view of a mapped segment: creation, validated attach, typed accessors.
//
// Thread safety: after construction a Segment is immutable (the mapping); all synchronisation is
// on the segment's own words. Process safety: see shm_layout/LAYOUT.md.
//
// Bounds: the capacities and region bases are copied out of the header once it is validated, and
// every accessor checks its index against the copy, so an index read from the segment (a list
// link, a block number, a session slot) that is out of range throws shm::SegmentCorrupt instead of
// reaching outside the mapping, whatever another process writes into the header later.
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

// How much of a mapping the kernel maps with 2 MiB pages (read from /proc/self/smaps), and, when
// none, what the shared-memory mount allows (see Segment::pages()).
struct PageUse {
  bool known = false;            // false when /proc/self/smaps could not be read (then only `why` says so)
  std::uint64_t bytes = 0;       // resident bytes of the mapping
  std::uint64_t huge_bytes = 0;  // of those, mapped with 2 MiB pages
  std::string why;               // when huge_bytes == 0: the mount's or the kernel's setting (or !known), for a log line
};

class Segment {
 public:
  ~Segment();
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;

  // Creates a new segment exclusively (fails with kAlreadyExists if the name is taken).
  static Result<std::unique_ptr<Segment>> create(const std::string& name, const CreateOptions& opts);
  // Maps an existing segment and validates owner, header, fingerprint and region map before
  // returning. The object must belong to a trusted user (trusted_owner()), so no other user can
  // plant a segment under the name: kPermissionDenied otherwise.
  static Result<std::unique_ptr<Segment>> open(const std::string& name);
  // The owners a segment may have: this process's effective user, root, the `sessionbroker` system
  // user if it exists, and the user (name or uid) in $SESSIONBROKER_SEGMENT_OWNER if set.
  static bool trusted_owner(uid_t owner);
  // Validates a segment image; the one place that decides whether bytes may be trusted.
  // Used by open() and by the fuzz target.
  static Status validate(const void* base, std::uint64_t size);
  // A Segment over memory the caller owns and keeps alive (a segment image in a buffer), for the
  // fuzz target and offline inspection. REQUIRES: validate(base, size) is OK. Never unmaps it.
  static std::unique_ptr<Segment> over_image(void* base, std::uint64_t size);
  static bool remove(const std::string& name);

  // Page sizes in use for this process's mapping. Every mapping asks for 2 MiB pages
  // (MADV_HUGEPAGE); the kernel gives them where the tmpfs of /dev/shm allows (mounted with
  // huge=advise, within_size or always, and the kernel's shmem_enabled not `deny`) and falls back
  // to 4 KiB pages silently. The broker logs what it got; the bench reports it beside scenario 5.
  PageUse pages() const;

  const std::string& name() const { return name_; }
  std::uint64_t size() const { return size_; }
  uid_t owner_uid() const { return owner_uid_; }

  shm::SegmentHeader& header() const { return *static_cast<shm::SegmentHeader*>(base_); }
  // The validated capacities (a process-local copy: the header's own may be overwritten).
  const shm::Capacities& caps() const { return caps_; }
  std::uint32_t record_count() const { return record_count_; }
  std::uint32_t index_size() const { return index_size_; }

  // Every index is checked: out of range throws shm::SegmentCorrupt.
  shm::ClientSlot& client(std::uint32_t i) const { return clients_[check(i, caps_.max_clients, "client slot")]; }
  shm::LockRecord& record(std::uint32_t i) const { return records_[check(i, record_count_, "lock record")]; }
  shm::SessionSlot& session(std::uint32_t i) const { return sessions_[check(i, caps_.max_sessions, "session slot")]; }
  std::uint32_t& index_word(std::uint32_t i) const { return index_[check(i, index_size_, "index word")]; }
  shm::Block& block(std::uint32_t i) const { return blocks_[check(i, caps_.block_count, "block")]; }
  shm::ClientStats& stats(std::uint32_t client) const { return stats_[check(client, caps_.max_clients, "client slot")]; }

  std::uint32_t first_record_of(std::uint32_t client) const { return client * caps_.locks_per_client; }
  std::uint32_t client_of_record(std::uint32_t rec) const { return rec / caps_.locks_per_client; }

 private:
  // REQUIRES: the header at `base` is validated (or freshly computed, for create()).
  Segment(std::string name, void* base, std::uint64_t size, uid_t owner, bool owns_mapping = true);
  template <class T>
  T* at(std::uint64_t offset) const { return reinterpret_cast<T*>(static_cast<char*>(base_) + offset); }
  static std::uint32_t check(std::uint32_t i, std::uint32_t limit, const char* what) {
    if (i >= limit) [[unlikely]] out_of_range(i, limit, what);
    return i;
  }
  [[noreturn, gnu::cold]] static void out_of_range(std::uint32_t i, std::uint32_t limit, const char* what);
  void bind(const shm::Capacities& caps, const shm::Regions& regions);  // fills the copies below
  void initialise(const shm::Capacities& caps, const shm::Regions& regions);

  std::string name_;
  void* base_;
  std::uint64_t size_;
  uid_t owner_uid_;
  bool owns_mapping_;
  shm::Capacities caps_{};
  std::uint32_t record_count_ = 0, index_size_ = 0;
  shm::ClientSlot* clients_ = nullptr;
  shm::LockRecord* records_ = nullptr;
  shm::SessionSlot* sessions_ = nullptr;
  std::uint32_t* index_ = nullptr;
  shm::Block* blocks_ = nullptr;
  shm::ClientStats* stats_ = nullptr;
};

}  // namespace sessionbroker::detail
