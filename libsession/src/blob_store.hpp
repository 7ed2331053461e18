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

// A holder's process-local copy of a session's committed blob: its body (up to kMaxBytes) as a
// fenced read copied it (without the session mutex, checked again after; or under it), or as the
// holder's own commit wrote it. A blob never changes once published (a commit publishes a new one
// and bumps SessionSlot::version), so the copy is the committed state for as long as the session's
// `blob` and `version` are the copy's, under whichever grant it was taken. While it is, a fenced
// read answers from it and a commit merges into it, neither taking the session mutex for that
// (blob_store.cpp; docs/protocol.md §7, 1' and "reads from the copy"); a commit still publishes
// only if `version` is the copy's.
// Process memory, one thread at a time; never read by others.
struct BlobCopy {
  static constexpr std::uint32_t kMaxBytes = 16 * 1024;  // larger blobs are read in place, as before
  SessionRef ref{};
  std::uint64_t token = 0;  // the grant it was taken under; 0: holds nothing
  std::uint32_t head = shm::kNil;  // SessionSlot::blob when copied
  std::uint64_t version = 0;       // SessionSlot::version when copied
  std::uint32_t count = 0;         // entries in `body`
  std::string body;                // the blob's entries (shm/block.hpp), without its header
  bool holds_body_of(SessionRef r) const { return token != 0 && ref.slot == r.slot && ref.gen == r.gen; }
};

class BlobStore {
 public:
  explicit BlobStore(Segment& seg) : seg_(seg) {}
  // ThreadSanitizer cannot see that take_copy_unlocked's checks discard a copy that raced a
  // writer (a seqlock read over plain memory): its build takes the mutex for every copy.
#if defined(__SANITIZE_THREAD__)
  static constexpr bool kCopyWithoutMutex = false;
#else
  static constexpr bool kCopyWithoutMutex = true;
#endif

  // Fenced reads. With `copy`: answered from it without the session mutex while it is current
  // (copy_is_current); otherwise the blob's body (when at most BlobCopy::kMaxBytes) is copied
  // without the mutex while `g` holds (take_copy_unlocked), or else under it, and read from the copy.
  Result<std::optional<std::string>> read(SessionRef ref, const RecordGrant& g, std::string_view name,
                                          BlobCopy* copy = nullptr);
  Result<AttrMap> read_all(SessionRef ref, const RecordGrant& g, BlobCopy* copy = nullptr);
  // `generation`: the committer's slot generation (its pending blob is its own only while it holds).
  // `copy`, when taken under `g`, replaces step 1's read; it is left holding what was committed.
  Status commit(std::uint32_t client, std::uint32_t generation, SessionRef ref, const RecordGrant& g,
                const ChangeSet& changes, BlobCopy* copy = nullptr);
  std::uint32_t free_blocks() const { return shm::load(seg_.header().free_count); }

  // ---- the allocator, for the registry (freeing a destroyed session's or a dead client's
  // blob) and commit; REQUIRES: alloc mutex ----
  // Returns the head of a chain of `blocks` blocks, or kNil if memory is short.
  std::uint32_t alloc_chain(std::uint32_t blocks);
  void free_chain(std::uint32_t head);

  // Whether `g` holds the session and `copy` is its committed state, read without the session
  // mutex. REQUIRES: the caller owns `g` (a thread lock under it). False is no error: take the mutex.
  bool copy_is_current(SessionRef ref, const RecordGrant& g, const BlobCopy& copy) const;

 private:
  // REQUIRES: the session mutex of `s`, and `g` holds it. Fills `copy` from the session's blob;
  // false when the blob is corrupt. A blob over kMaxBytes leaves `copy` holding nothing.
  bool take_copy(const shm::SessionSlot& s, SessionRef ref, const RecordGrant& g, BlobCopy& copy) const;
  // The same without the session mutex, checked before and after (docs/protocol.md §7, "copies
  // without S"). REQUIRES: the caller owns `g`. False is no error (`copy` then holds nothing):
  // take the mutex.
  bool take_copy_unlocked(SessionRef ref, const RecordGrant& g, BlobCopy& copy) const;
  // A fenced read's frame: under the session mutex, the token checked and `copy` (if any) taken;
  // then either in_place(name, len, reader) per entry there (no copy, or a blob too large for one)
  // or from_copy(name, value) per entry of the copy, after the mutex is let go.
  template <class InPlace, class FromCopy>
  Status fenced_read(SessionRef ref, const RecordGrant& g, BlobCopy* copy, InPlace&& in_place, FromCopy&& from_copy);

  Segment& seg_;
};

}  // namespace sessionbroker::detail
