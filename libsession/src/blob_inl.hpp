// Template part of blob.hpp.
#pragma once

#include "sessionbroker/shm/block.hpp"

namespace sessionbroker::detail {

template <class F>
bool for_each_entry(const Segment& seg, std::uint32_t head, F&& f) {
  if (head == shm::kNil) return true;
  ChainReader in(seg, head);
  shm::BlobHeader bh{};
  if (!in.read(&bh, sizeof bh)) return false;
  char name[shm::kMaxAttrNameBytes];
  for (std::uint32_t i = 0; i < bh.attr_count; ++i) {
    unsigned char eh[shm::kEntryHeaderBytes];
    if (!in.read(eh, sizeof eh)) return false;
    const std::uint32_t name_len = eh[0];
    const std::uint32_t value_len = eh[1] | (eh[2] << 8) | (eh[3] << 16) | (std::uint32_t{eh[4]} << 24);
    if (name_len == 0 || name_len > shm::kMaxAttrNameBytes || value_len > seg.caps().max_value_bytes) return false;
    if (!in.read(name, name_len)) return false;
    if (!f(std::string_view(name, name_len), value_len, in)) return false;
  }
  return true;
}

}  // namespace sessionbroker::detail
