// The fast path's word under the session mutex: absorb on lock, settle on unlock (fast_owner.hpp).
#include "fast_owner.hpp"

#include "sessionbroker/shm/atomic_word.hpp"
#include "sessionbroker/shm/state_words.hpp"

namespace sessionbroker::detail::fast {

using shm::RecordState;

bool names(const Segment& seg, std::uint32_t slot, std::uint32_t rec) {
  if (slot >= seg.caps().max_sessions || rec >= seg.record_count()) return false;
  const auto& r = seg.record(rec);
  return shm::load(seg.session(slot).fast, std::memory_order_acquire) ==
         owned(shm::load(r.session_gen, std::memory_order_relaxed), rec);
}

void absorb(Segment& seg, std::uint32_t slot, bool link) {
  auto& s = seg.session(slot);
  std::uint64_t w = shm::load(s.fast, std::memory_order_relaxed);
  // seq_cst: the retirement handshake (Registry::retire stores `retired`, then locks each session).
  while (w != kSlow && !shm::compare_exchange(s.fast, w, kSlow, std::memory_order_seq_cst)) {
  }
  const auto rec = owner_of(w);
  if (!rec || *rec >= seg.record_count()) return;  // a word out of range names nobody: the records are the truth
  auto& r = seg.record(*rec);
  // The owner wrote these before it published the word (release), so they are its; a word that
  // disagrees with its record (garbage) names nobody.
  if (shm::load(r.session, std::memory_order_relaxed) != slot ||
      shm::load(r.session_gen, std::memory_order_relaxed) != generation_of(w) || generation_of(w) != s.generation)
    return;
  // kGranted only: a kFree record's owner has not stored its grant yet and, finding the word
  // taken, asks again under the mutex (LockTable::acquire_fast); a kReleasing one is being given
  // back. seq_cst: the owner stores kGranted, then reads the word (seq_cst); one of the two sees
  // the other.
  if (shm::state(r, std::memory_order_seq_cst) != RecordState::kGranted) return;
  if (!link) return;
  r.next = s.holders_head;
  s.holders_head = *rec;
  ++s.holder_count;
  shm::set_lock_mode(s, shm::LockMode::kExclusive);
}

void settle(Segment& seg, std::uint32_t slot) {
  auto& s = seg.session(slot);
  if (shm::state(s, std::memory_order_relaxed) != shm::SessionState::kLive || s.queue_head != shm::kNil) return;
  if (s.holders_head == shm::kNil) {
    if (s.holder_count == 0) shm::store(s.fast, idle(s.generation), std::memory_order_release);
    return;
  }
  const std::uint32_t rec = s.holders_head;
  if (s.holder_count != 1 || rec >= seg.record_count()) return;
  auto& r = seg.record(rec);
  if (r.next != shm::kNil || shm::mode(r) != shm::LockMode::kExclusive ||
      shm::state(r, std::memory_order_relaxed) != RecordState::kGranted)
    return;
  s.holders_head = shm::kNil;
  s.holder_count = 0;
  shm::set_lock_mode(s, shm::LockMode::kNone);
  shm::store(s.fast, owned(s.generation, rec), std::memory_order_release);
}

}  // namespace sessionbroker::detail::fast
