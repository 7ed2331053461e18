// Fuzz-side helpers: a Segment over a plain buffer, and a read-only walker that follows, without
// any mutex, every chain and list an attacher or a tool may follow in a validated segment image.
//
// Everything here only reads. Every index is range-checked before use and every walk is bounded,
// so this file is also a reference for how a lock-free reader must treat segment words: the
// validation in Segment::validate covers the header only, every other word may be garbage.
#pragma once

// Everything segment.hpp includes comes first, so the access override below touches only the
// Segment class itself (the library has no constructor from a buffer, and we do not edit it).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <sys/stat.h>

#include "sessionbroker/error.hpp"
#include "sessionbroker/shm/atomic_word.hpp"
#include "sessionbroker/shm/layout.hpp"

#include "segment.hpp"

#include "blob.hpp"

namespace sbfuzz {

namespace shm = sessionbroker::shm;
using sessionbroker::detail::Segment;

// A detail::Segment over memory the caller owns (a heap buffer, not a mapping): the library
// functions under test see an ordinary Segment.
class SegmentView {
 public:
  SegmentView(void* base, std::uint64_t size) : seg_(Segment::over_image(base, size)) {}
  Segment& get() { return *seg_; }

 private:
  std::unique_ptr<Segment> seg_;
};

struct WalkReport {
  std::uint32_t live_sessions = 0;
  std::uint32_t blobs_ok = 0, blobs_corrupt = 0;
  std::uint32_t free_listed = 0;
  bool free_list_ok = true;
  std::uint32_t bad_words = 0;  // out-of-range indices, cycles, counts that do not add up
};

// Follows a chain of blocks from `head` for at most block_count blocks. Returns the number of
// blocks visited, or -1 when a link is out of range or the chain is longer than the attribute
// memory (a cycle). `seen` (block_count entries, all false) catches cycles early.
inline std::int64_t walk_chain(const Segment& seg, std::uint32_t head, std::vector<bool>& seen) {
  const std::uint32_t n = seg.caps().block_count;
  std::int64_t count = 0;
  for (std::uint32_t b = head; b != shm::kNil; b = shm::load(seg.block(b).next, std::memory_order_relaxed)) {
    if (b >= n || seen[b] || count >= n) return -1;
    seen[b] = true;
    ++count;
  }
  return count;
}

// A record list (holders or queue) linked through LockRecord::next, bounded by record_count.
inline bool walk_records(const Segment& seg, std::uint32_t head, std::uint32_t max_len) {
  const std::uint32_t n = seg.record_count();
  std::uint32_t steps = 0;
  for (std::uint32_t r = head; r != shm::kNil; r = shm::load(seg.record(r).next, std::memory_order_relaxed)) {
    if (r >= n || steps++ >= std::min(n, max_len)) return false;
    const std::uint32_t c = seg.client_of_record(r);
    if (c >= seg.caps().max_clients) return false;
  }
  return true;
}

// Decodes a blob through the library's own reader (detail::for_each_entry), copying values out (as
// BlobStore::read_all does) or skipping them (as BlobStore::read does for names it is not looking for).
// The callback checks what for_each_entry promises its callers. Returns false
// for a blob the library reports corrupt; never crashes on garbage (that is the test).
inline bool walk_blob(const Segment& seg, std::uint32_t head, std::string& scratch) {
  const std::uint32_t max_value = seg.caps().max_value_bytes;
  return sessionbroker::detail::for_each_entry(
      seg, head, [&](std::string_view name, std::uint32_t len, sessionbroker::detail::ChainReader& in) {
        if (name.empty() || name.size() > shm::kMaxAttrNameBytes || len > max_value) __builtin_trap();
        if (len % 2) return in.read(nullptr, len);  // skip, as BlobStore::read does for other names
        scratch.resize(len);
        return in.read(scratch.data(), len);
      });
}

// The whole read-only walk over a segment that Segment::validate accepted.
inline WalkReport walk_segment(const Segment& seg) {
  WalkReport rep;
  const shm::Capacities caps = seg.caps();
  const shm::SegmentHeader& h = seg.header();
  std::vector<bool> seen(caps.block_count, false);
  std::string scratch;

  // Free list, bounded by block_count; validate() promised the head and the count are in range.
  const std::uint32_t free_head = shm::load(h.free_head, std::memory_order_relaxed);
  const std::uint32_t free_count = shm::load(h.free_count, std::memory_order_relaxed);
  if (free_head != shm::kNil && free_head >= caps.block_count) __builtin_trap();  // validate's promise
  if (free_count > caps.block_count) __builtin_trap();                            // validate's promise
  const std::int64_t listed = walk_chain(seg, free_head, seen);
  rep.free_list_ok = listed >= 0 && static_cast<std::uint64_t>(listed) == free_count;
  rep.free_listed = listed < 0 ? 0 : static_cast<std::uint32_t>(listed);
  if (!rep.free_list_ok) ++rep.bad_words;

  // Live sessions: their blob (library reader + independent chain walk) and their lock lists.
  for (std::uint32_t i = 0; i < caps.max_sessions; ++i) {
    const shm::SessionSlot& s = seg.session(i);
    if (shm::state(s, std::memory_order_relaxed) != shm::SessionState::kLive) continue;
    ++rep.live_sessions;
    const std::uint32_t blob = shm::load(s.blob, std::memory_order_acquire);
    if (walk_blob(seg, blob, scratch)) ++rep.blobs_ok; else ++rep.blobs_corrupt;
    if (walk_chain(seg, blob, seen) < 0) ++rep.bad_words;  // also catches blocks shared with the free list
    const std::uint32_t id_len = s.id_len;
    if (id_len == 0 || id_len > shm::kMaxSessionIdBytes) ++rep.bad_words;
    if (!walk_records(seg, s.holders_head, seg.record_count())) ++rep.bad_words;
    if (!walk_records(seg, s.queue_head, seg.record_count())) ++rep.bad_words;
  }

  // Pending blobs of clients that are not free.
  for (std::uint32_t c = 0; c < caps.max_clients; ++c) {
    const shm::ClientSlot& cs = seg.client(c);
    if (shm::state(cs, std::memory_order_relaxed) == shm::ClientState::kFree) continue;
    if (walk_chain(seg, cs.pending_blob, seen) < 0) ++rep.bad_words;
  }

  // Session index: each word empty, a tombstone or a slot number in range.
  for (std::uint32_t i = 0; i < seg.index_size(); ++i) {
    const std::uint32_t v = seg.index_word(i);
    if (v != shm::kIndexEmpty && v != shm::kIndexTombstone && v >= caps.max_sessions) ++rep.bad_words;
  }
  return rep;
}

}  // namespace sbfuzz
