// The attribute store: block allocation, copy-on-write commit, reads under the session mutex.
// LAYOUT.md section "Attribute store" and "Commit".
//
// Commit protocol (the caller holds the exclusive process lock with token T):
//   1. session mutex: check T; encode old state + changes into a local buffer; unlock. With a
//      BlobCopy that is current (copy_is_current: T holds and the session's blob and version are
//      the copy's, read without the mutex), no mutex: the old state is the copy's, and step 4
//      also requires SessionSlot::version to be the copy's. A copy that is no longer current there
//      (another thread of this process committed under the same grant since) is dropped with the
//      new chain, and the commit starts again here without it.
//   2. alloc mutex: take the blocks, record the chain in ClientSlot::pending_blob; unlock.
//   3. no mutex: copy the buffer into the pending chain (only this client touches it).
//   4. session mutex, then alloc mutex: check T again; SessionSlot::blob = new chain (the commit
//      point, one store); pending_blob = kNil; free the old chain; unlock both.
// Crash after 2 or 3: the chain is the dead client's pending blob; its reclaim frees it.
// Crash inside 4: the alloc repair keeps what any SessionSlot::blob or live pending_blob reaches
// and frees the rest, so the new state is committed or not, whole, and nothing leaks.
#include <atomic>
#include <cstring>

#include <fmt/format.h>

#include "blob.hpp"
#include "stats.hpp"
#include "blob_store.hpp"
#include "guards.hpp"
#include "lock_table.hpp"
#include "test_point.hpp"

namespace sessionbroker::detail {

std::uint64_t blocks_for(std::uint64_t bytes) { return (bytes + shm::kBlockPayload - 1) / shm::kBlockPayload; }

bool ChainReader::read(void* dst, std::uint64_t n) {
  auto* out = static_cast<unsigned char*>(dst);
  while (n > 0) {
    if (block_ >= seg_.caps().block_count || steps_ >= seg_.caps().block_count) return false;
    const auto& b = seg_.block(block_);
    const std::uint64_t take = std::min<std::uint64_t>(n, shm::kBlockPayload - offset_);
    if (out) {
      std::memcpy(out, b.payload + offset_, take);
      out += take;
    }
    n -= take;
    offset_ += static_cast<std::uint32_t>(take);
    if (offset_ == shm::kBlockPayload) {
      block_ = b.next;
      offset_ = 0;
      ++steps_;
    }
  }
  return true;
}

bool ChainWriter::write(const void* src, std::uint64_t n) {
  const auto* in = static_cast<const unsigned char*>(src);
  while (n > 0) {
    if (block_ >= seg_.caps().block_count) return false;
    auto& b = seg_.block(block_);
    const std::uint64_t take = std::min<std::uint64_t>(n, shm::kBlockPayload - offset_);
    std::memcpy(b.payload + offset_, in, take);
    in += take;
    n -= take;
    offset_ += static_cast<std::uint32_t>(take);
    if (offset_ == shm::kBlockPayload) {
      block_ = b.next;
      offset_ = 0;
    }
  }
  return true;
}

// REQUIRES: alloc mutex. Returns the head of a chain of `blocks` blocks, or kNil if memory is short.
std::uint32_t BlobStore::alloc_chain(std::uint32_t blocks) {
  auto& h = seg_.header();
  if (blocks == 0 || blocks > h.free_count) return shm::kNil;
  const std::uint32_t head = h.free_head;
  std::uint32_t last = head;
  for (std::uint32_t i = 1; i < blocks; ++i) last = seg_.block(last).next;
  h.free_head = seg_.block(last).next;
  seg_.block(last).next = shm::kNil;
  shm::store(h.free_count, h.free_count - blocks);
  return head;
}

// REQUIRES: alloc mutex.
void BlobStore::free_chain(std::uint32_t head) {
  auto& h = seg_.header();
  std::uint32_t n = 0;
  std::uint32_t last = head;
  while (last < seg_.caps().block_count && n <= seg_.caps().block_count) {
    ++n;
    if (seg_.block(last).next == shm::kNil) break;
    last = seg_.block(last).next;
  }
  if (last >= seg_.caps().block_count) return;  // corrupt chain: leave it to the alloc repair's sweep
  seg_.block(last).next = h.free_head;
  h.free_head = head;
  shm::store(h.free_count, h.free_count + n);
}

namespace {

Status stale(const RecordGrant& g) {
  return Status(ErrorCode::kStaleToken, fmt::format("token {} no longer holds the session lock", g.token));
}
Status corrupt_blob() { return Status(ErrorCode::kCorrupt, "session state blob is corrupt"); }

// Visits each entry of a blob body held in process memory: f(name, value). False (stop) when an
// entry does not fit the body or breaks the limits for_each_entry checks: the bytes came from the
// segment.
template <class F>
bool for_each_copied_entry(const Segment& seg, const BlobCopy& copy, F&& f) {
  const std::string_view body = copy.body;
  std::size_t at = 0;
  for (std::uint32_t i = 0; i < copy.count; ++i) {
    if (body.size() - at < shm::kEntryHeaderBytes) return false;
    const auto* eh = reinterpret_cast<const unsigned char*>(body.data() + at);
    const std::uint32_t name_len = eh[0];
    const std::uint32_t value_len = eh[1] | (eh[2] << 8) | (eh[3] << 16) | (std::uint32_t{eh[4]} << 24);
    at += shm::kEntryHeaderBytes;
    if (name_len == 0 || name_len > shm::kMaxAttrNameBytes || value_len > seg.caps().max_value_bytes ||
        body.size() - at < std::size_t{name_len} + value_len)
      return false;
    f(body.substr(at, name_len), body.substr(at + name_len, value_len));
    at += name_len + value_len;
  }
  return true;
}

void append_entry(std::string& out, std::string_view name, std::string_view value) {
  const auto len = static_cast<std::uint32_t>(value.size());
  const unsigned char eh[shm::kEntryHeaderBytes] = {
      static_cast<unsigned char>(name.size()), static_cast<unsigned char>(len), static_cast<unsigned char>(len >> 8),
      static_cast<unsigned char>(len >> 16), static_cast<unsigned char>(len >> 24)};
  out.append(reinterpret_cast<const char*>(eh), sizeof eh);
  out.append(name);
  out.append(value);
}

}  // namespace

bool BlobStore::take_copy(const shm::SessionSlot& s, SessionRef ref, const RecordGrant& g, BlobCopy& copy) const {
  copy.token = 0;
  shm::BlobHeader bh{0, 0};
  if (s.blob != shm::kNil) {
    ChainReader in(seg_, s.blob);
    if (!in.read(&bh, sizeof bh)) return false;
    if (bh.body_bytes > BlobCopy::kMaxBytes) return true;  // read in place
    copy.body.resize(bh.body_bytes);
    if (!in.read(copy.body.data(), bh.body_bytes)) return false;
  } else {
    copy.body.clear();
  }
  copy.ref = ref;
  copy.token = g.token;
  copy.head = s.blob;
  copy.version = s.version;
  copy.count = bh.attr_count;
  return true;
}

// docs/protocol.md §7, "reads from the copy": the record's state first (acquire), then the session's
// version, blob and generation (acquire each, so none is loaded before the one above it). If T held
// at the first load and the three match the copy, the blob published at that moment was the copy's:
// versions only grow within a generation, and the copy's version was current when it was taken,
// before this call, and still is after the first load.
bool BlobStore::copy_is_current(SessionRef ref, const RecordGrant& g, const BlobCopy& copy) const {
  if (!copy.holds_body_of(ref) || !LockTable::holds_unlocked(seg_, ref, g)) return false;
  const auto& s = seg_.session(ref.slot);
  return shm::load(s.version) == copy.version && shm::load(s.blob) == copy.head && shm::load(s.generation) == ref.gen;
}

// docs/protocol.md §7, "copies without S": the record's state, then the session's version, blob
// and generation (acquire each), the chain copied, and all four read again. If T held at the
// first look and at the second and the three did not move, the chain was the published blob
// all along: only a commit under a holding grant replaces it (and bumps version, which never
// goes back within a generation), and nothing frees a published chain before it is replaced or
// T is taken away. Anything else (a commit of another thread of this process meanwhile, T broken,
// the chain cut short by a free) is no error: false, and the caller takes S.
bool BlobStore::take_copy_unlocked(SessionRef ref, const RecordGrant& g, BlobCopy& copy) const {
  if (!LockTable::holds_unlocked(seg_, ref, g)) return false;
  const auto& s = seg_.session(ref.slot);
  const std::uint64_t version = shm::load(s.version);
  const std::uint32_t head = shm::load(s.blob);
  if (shm::load(s.generation) != ref.gen) return false;
  copy.token = 0;  // holds nothing unless the checks below pass
  shm::BlobHeader bh{0, 0};
  if (head != shm::kNil) {
    ChainReader in(seg_, head);
    if (!in.read(&bh, sizeof bh) || bh.body_bytes > BlobCopy::kMaxBytes) return false;
    copy.body.resize(bh.body_bytes);
    if (!in.read(copy.body.data(), bh.body_bytes)) return false;
  } else {
    copy.body.clear();
  }
  test_point(TestPoint::kCopiedWithoutMutex);
  std::atomic_thread_fence(std::memory_order_acquire);  // the copy's loads before the checks' loads
  if (!LockTable::holds_unlocked(seg_, ref, g) || shm::load(s.version) != version || shm::load(s.blob) != head ||
      shm::load(s.generation) != ref.gen)
    return false;
  copy.ref = ref;
  copy.token = g.token;
  copy.head = head;
  copy.version = version;
  copy.count = bh.attr_count;
  return true;
}

template <class InPlace, class FromCopy>
Status BlobStore::fenced_read(SessionRef ref, const RecordGrant& g, BlobCopy* copy, InPlace&& in_place,
                              FromCopy&& from_copy) {
  // Nothing committed since the copy, or a copy taken now while T holds: no mutex.
  if (copy && (copy_is_current(ref, g, *copy) || (kCopyWithoutMutex && take_copy_unlocked(ref, g, *copy))))
    return for_each_copied_entry(seg_, *copy, from_copy) ? Status{} : corrupt_blob();
  {
    SessionGuard guard(seg_, ref.slot);
    const auto& s = seg_.session(ref.slot);
    if (!LockTable::holds(seg_, s, ref, g)) return stale(g);
    if (copy && !take_copy(s, ref, g, *copy)) return corrupt_blob();
    if (!copy || copy->token == 0) return for_each_entry(seg_, s.blob, in_place) ? Status{} : corrupt_blob();
  }
  return for_each_copied_entry(seg_, *copy, from_copy) ? Status{} : corrupt_blob();
}

Result<std::optional<std::string>> BlobStore::read(SessionRef ref, const RecordGrant& g, std::string_view name,
                                                   BlobCopy* copy) {
  std::optional<std::string> found;
  Status st = fenced_read(
      ref, g, copy,
      [&](std::string_view n, std::uint32_t len, ChainReader& in) {
        if (n != name) return in.read(nullptr, len);
        found.emplace(len, '\0');
        return in.read(found->data(), len);
      },
      [&](std::string_view n, std::string_view v) {
        if (n == name) found.emplace(v);
      });
  if (!st) return st;
  return found;
}

Result<AttrMap> BlobStore::read_all(SessionRef ref, const RecordGrant& g, BlobCopy* copy) {
  AttrMap all;
  Status st = fenced_read(
      ref, g, copy,
      [&](std::string_view n, std::uint32_t len, ChainReader& in) {
        std::string v(len, '\0');
        if (!in.read(v.data(), len)) return false;
        all.emplace(std::string(n), std::move(v));
        return true;
      },
      [&](std::string_view n, std::string_view v) { all.emplace(std::string(n), std::string(v)); });
  if (!st) return st;
  return all;
}

Status BlobStore::commit(std::uint32_t client, std::uint32_t generation, SessionRef ref, const RecordGrant& g,
                         const ChangeSet& changes, BlobCopy* copy) {
  if (changes.empty()) return {};
  for (bool from_copy = copy && copy_is_current(ref, g, *copy);; from_copy = false) {
    // 1. Merge the committed state with the changes (both sorted by name) into a local buffer.
    std::string body;
    std::uint32_t count = 0;
    std::uint32_t base = shm::kNil;
    std::uint64_t version = 0;
    auto next_change = changes.begin();
    auto emit_changes_before = [&](std::string_view bound, bool all) {
      for (; next_change != changes.end() && (all || next_change->first < bound); ++next_change)
        if (next_change->second) append_entry(body, next_change->first, *next_change->second), ++count;
    };
    if (from_copy) {
      base = copy->head;
      version = copy->version;
      bool ok = for_each_copied_entry(seg_, *copy, [&](std::string_view n, std::string_view v) {
        emit_changes_before(n, false);
        if (next_change != changes.end() && next_change->first == n) return;  // replaced below
        append_entry(body, n, v);
        ++count;
      });
      if (!ok) return corrupt_blob();
    } else {
      SessionGuard guard(seg_, ref.slot);
      const auto& s = seg_.session(ref.slot);
      if (!LockTable::holds(seg_, s, ref, g)) return stale(g);
      base = s.blob;
      version = s.version;
      bool ok = for_each_entry(seg_, base, [&](std::string_view n, std::uint32_t len, ChainReader& in) {
        emit_changes_before(n, false);
        if (next_change != changes.end() && next_change->first == n) return in.read(nullptr, len);  // replaced below
        std::string v(len, '\0');
        if (!in.read(v.data(), len)) return false;
        append_entry(body, n, v);
        ++count;
        return true;
      });
      if (!ok) return corrupt_blob();
    }
    emit_changes_before({}, true);
    if (body.size() > 0xFFFF0000u) return Status(ErrorCode::kTooLarge, "session state would exceed 4 GiB");
    const shm::BlobHeader bh{static_cast<std::uint32_t>(body.size()), count};
    const std::uint64_t bytes = sizeof bh + body.size();
    const std::uint64_t nblocks = count == 0 ? 0 : blocks_for(bytes);
    auto& cs = seg_.client(client);
    // 2. Take the blocks as this client's pending blob.
    std::uint32_t fresh = shm::kNil;
    if (nblocks > 0) {
      auto ag = alloc_guard(seg_);
      // The slot must still be the committer's: a pending blob hangs off its slot, and a reclaim of
      // the slot (its generation moves on at the next attach) frees whatever hangs there.
      if (cs.generation != generation || shm::state(cs) == shm::ClientState::kFree)
        return Status(ErrorCode::kDetached, "this client's registration was reclaimed: attach again");
      if (nblocks > seg_.caps().block_count || (fresh = alloc_chain(static_cast<std::uint32_t>(nblocks))) == shm::kNil)
        return Status(ErrorCode::kCapacityExceeded, fmt::format("attribute memory full: commit needs {} blocks, {} free",
                                                                nblocks, seg_.header().free_count));
      cs.pending_blob = fresh;
    }
    // 3. Fill them; nobody else reads a pending blob.
    if (fresh != shm::kNil) {
      ChainWriter out(seg_, fresh);
      out.write(&bh, sizeof bh);
      out.write(body.data(), body.size());
    }
    test_point(TestPoint::kCommitStaged);
    // 4. Publish with one store, or give the blocks back if the lock was lost meanwhile (or, from a
    // copy, if the copy is no longer what is committed: then once more from the blob itself).
    SessionGuard guard(seg_, ref.slot);
    auto& s = seg_.session(ref.slot);
    const bool held = LockTable::holds(seg_, s, ref, g);
    const bool current = held && s.blob == base && s.version == version;
    auto ag = alloc_guard(seg_);
    // References are dropped before the chains they named are freed: a death in between must leave
    // the alloc repair nothing that leads into the free list.
    if (current) {
      shm::store(s.blob, fresh);
      shm::store(s.version, s.version + 1);  // read without the mutex by holders (copy_is_current)
      cs.pending_blob = shm::kNil;
      if (base != shm::kNil) free_chain(base);
      count_event(seg_.stats(client), shm::Counter::kCommits);
      if (copy && body.size() <= BlobCopy::kMaxBytes) {  // what was just committed, for the next commit
        copy->token = g.token;
        copy->ref = ref;
        copy->head = fresh;
        copy->version = s.version;
        copy->count = count;
        copy->body.swap(body);
      } else if (copy) {
        copy->token = 0;
      }
      return {};
    }
    if (fresh != shm::kNil && cs.pending_blob == fresh) {  // a reclaim of the slot freed it already otherwise
      cs.pending_blob = shm::kNil;
      free_chain(fresh);
    }
    if (copy) copy->token = 0;
    if (!(held && from_copy)) return stale(g);
  }
}

}  // namespace sessionbroker::detail
