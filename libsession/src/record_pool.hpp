// This client's free lock records: the range of the segment's record table its slot owns
// (LAYOUT.md "Client table"), minus the records it holds or waits on. Every acquire takes one and
// every release gives one back, so the pool sits on the uncontended lock cycle: it is a lock-free
// stack of record numbers (one compare-and-swap each way, where a mutex costs two atomic
// operations), whose head carries a tag that every push and pop moves on, so a pop that read a
// stale `next` fails its compare-and-swap instead of corrupting the stack (ABA).
//
// Process memory only: a crash takes it along, and the slot's next owner starts with every record
// free (Registry::attach_client). Thread safety: take() and give() may run concurrently from any
// thread; give() only a record that take() handed out and nobody gave back since.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>

namespace sessionbroker::detail {

class RecordPool {
 public:
  // Records first .. first + count - 1, all free; take() hands out `first` first.
  RecordPool(std::uint32_t first, std::uint32_t count)
      : first_(first), next_(std::make_unique<std::atomic<std::uint32_t>[]>(count)) {
    for (std::uint32_t i = 0; i < count; ++i) next_[i].store(i + 1 < count ? i + 1 : kEmpty, std::memory_order_relaxed);
    head_.store(count > 0 ? 0 : kEmpty, std::memory_order_relaxed);
  }

  std::optional<std::uint32_t> take() {
    std::uint64_t head = head_.load(std::memory_order_acquire);
    for (;;) {
      const std::uint32_t top = index(head);
      if (top == kEmpty) return std::nullopt;
      // `top` may be taken, and given back with another `next`, by a thread that wins the race:
      // the head's tag has moved on then, and the compare-and-swap fails and reloads.
      const std::uint32_t next = next_[top].load(std::memory_order_relaxed);
      if (head_.compare_exchange_weak(head, moved(head, next), std::memory_order_acquire, std::memory_order_acquire))
        return first_ + top;
    }
  }

  void give(std::uint32_t rec) {
    const std::uint32_t i = rec - first_;
    std::uint64_t head = head_.load(std::memory_order_relaxed);
    do next_[i].store(index(head), std::memory_order_relaxed);
    while (!head_.compare_exchange_weak(head, moved(head, i), std::memory_order_release, std::memory_order_relaxed));
  }

 private:
  static constexpr std::uint32_t kEmpty = UINT32_MAX;
  static std::uint32_t index(std::uint64_t head) { return static_cast<std::uint32_t>(head); }
  // The head with `top` on top and the tag moved on.
  static std::uint64_t moved(std::uint64_t head, std::uint32_t top) { return ((head >> 32) + 1) << 32 | top; }

  const std::uint32_t first_;
  const std::unique_ptr<std::atomic<std::uint32_t>[]> next_;  // next_[i]: the record below i (kEmpty: none)
  std::atomic<std::uint64_t> head_;                           // tag << 32 | the top record - first_
};

}  // namespace sessionbroker::detail
