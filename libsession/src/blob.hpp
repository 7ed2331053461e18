// Encoding of a session's committed state (a blob) and sequential access to it across a block
// chain. Format: shm_layout/include/sessionbroker/shm/block.hpp and LAYOUT.md "Attribute store".
//
// Readers are bounded: a chain is followed for at most block_count blocks and every block index is
// range-checked, so a corrupt chain yields kCorrupt instead of a crash or a hang.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "segment.hpp"

namespace sessionbroker::detail {

// Reads bytes sequentially from a chain of blocks.
class ChainReader {
 public:
  ChainReader(const Segment& seg, std::uint32_t head) : seg_(seg), block_(head) {}
  // Copies n bytes into dst (dst may be null to skip). False if the chain ends early or is corrupt.
  bool read(void* dst, std::uint64_t n);

 private:
  const Segment& seg_;
  std::uint32_t block_;
  std::uint32_t offset_ = 0;
  std::uint32_t steps_ = 0;
};

// Writes bytes sequentially into a chain of blocks that the caller owns (a pending blob).
class ChainWriter {
 public:
  ChainWriter(Segment& seg, std::uint32_t head) : seg_(seg), block_(head) {}
  bool write(const void* src, std::uint64_t n);

 private:
  Segment& seg_;
  std::uint32_t block_;
  std::uint32_t offset_ = 0;
};

struct BlobEntry {
  std::string name;
  std::string value;
};

// Visits each entry of the blob at `head` (kNil = empty): f(name, value_len, reader) must consume
// exactly value_len bytes from the reader (read or skip). Returns false on a corrupt blob.
template <class F>
bool for_each_entry(const Segment& seg, std::uint32_t head, F&& f);

std::uint64_t blocks_for(std::uint64_t bytes);

}  // namespace sessionbroker::detail

#include "blob_inl.hpp"
