// BlobStore: a session's committed attributes and the block allocator (LAYOUT.md "Attribute
// store" and "Commit"): fenced reads, copy-on-write commit, allocation and freeing of block chains.
//
// Owns: the blocks, the header's free list (free_head, free_count) and, with the session mutex,
// SessionSlot::blob and version; ClientSlot::pending_blob.
// Lock order: a session mutex, then the alloc mutex inside it (commit's step 4); the alloc mutex
// alone for a pending blob. blob_store.cpp has the commit protocol and what a crash at each step
// leaves.
// Depends on: the lock table's fence (LockTable::holds) only.
//
// Thread safety: no mutable process-local state; any thread of any process mapping the segment.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "session_types.hpp"
#include "store_types.hpp"

namespace sessionbroker::detail {

class BlobStore {
 public:
  explicit BlobStore(Segment& seg) : seg_(seg) {}

  Result<std::optional<std::string>> read(SessionRef ref, const RecordGrant& g, std::string_view name);
  Result<AttrMap> read_all(SessionRef ref, const RecordGrant& g);
  // `generation`: the committer's slot generation (its pending blob is its own only while it holds).
  Status commit(std::uint32_t client, std::uint32_t generation, SessionRef ref, const RecordGrant& g,
                const ChangeSet& changes);
  std::uint32_t free_blocks() const { return shm::load(seg_.header().free_count); }

  // ---- the allocator, for the registry (freeing a destroyed session's or a dead client's
  // blob) and commit; REQUIRES: alloc mutex ----
  // Returns the head of a chain of `blocks` blocks, or kNil if memory is short.
  std::uint32_t alloc_chain(std::uint32_t blocks);
  void free_chain(std::uint32_t head);

 private:
  Segment& seg_;
};

}  // namespace sessionbroker::detail
