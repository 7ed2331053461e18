// The attribute store: fixed-size blocks chained into blobs. LAYOUT.md section "Attribute store".
//
// A session's committed state is one blob: a chain of blocks whose payloads, concatenated, hold a
// BlobHeader followed by `attr_count` entries {u8 name_len, u32 value_len (little-endian, unaligned),
// name bytes, value bytes}, sorted by name. Blobs are immutable once published: a commit builds a
// whole new blob (copy-on-write) and publishes it with one store of SessionSlot::blob, so a reader
// sees the old state or the new one, never a mix.
//
// Free blocks form a singly linked list from SegmentHeader::free_head; the list and
// ClientSlot::pending_blob change only under the alloc mutex. A block is in use exactly when it
// is reachable from some SessionSlot::blob or some ClientSlot::pending_blob; the alloc repair
// rebuilds the free list from that rule, so a crash anywhere inside the alloc mutex leaks nothing.
#pragma once

#include <cstdint>
#include <type_traits>

#include "sessionbroker/shm/constants.hpp"

namespace sessionbroker::shm {

struct Block {
  std::uint32_t next;  // next block of the same blob or of the free list, or kNil
  unsigned char payload[kBlockBytes - sizeof(std::uint32_t)];
};
static_assert(sizeof(Block) == kBlockBytes);
static_assert(std::is_standard_layout_v<Block> && std::is_trivially_copyable_v<Block>);

inline constexpr std::uint32_t kBlockPayload = sizeof(Block::payload);

struct BlobHeader {
  std::uint32_t body_bytes;  // bytes of entries after this header
  std::uint32_t attr_count;
};
static_assert(sizeof(BlobHeader) == 8);

inline constexpr std::uint32_t kEntryHeaderBytes = 1 + 4;  // name_len, value_len

}  // namespace sessionbroker::shm
