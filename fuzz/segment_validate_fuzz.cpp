// libFuzzer target: the input is a segment image (the bytes of /dev/shm/<name>).
//
// 1. detail::Segment::validate() on an exactly-sized, aligned heap copy (so ASan sees any read
//    past the image), and on shorter prefixes of it (smaller than a header, one page less).
//    It must return OK or a clear error: kCorrupt / kIncompatible with a message, never crash,
//    never hang. When it says OK, what it promises (LAYOUT.md "Attach handshake") must hold.
// 2. When validate() says OK: the walks an attacher or a tool makes read-only without a mutex
//    (segment_walk.hpp): every live session's blob through detail::for_each_entry, the free list
//    bounded by block_count, pending blobs, lock lists, the index. Garbage there must not crash.
// 3. Only with SB_FUZZ_DEEP=1 in the environment: the read-only store calls that take mutexes,
//    Registry::list_sessions() (Client::list), detail::check_segment() (`sessionctl check`) and
//    Admin::snapshot() of every slot (`sessionctl dump`), on a copy whose mutexes are
//    re-initialised (a corrupt pthread_mutex_t is a separate hazard: it can block a locker
//    forever, and no validation can rule it out). Its reproducers (id_len_*.img, snapshot_holders_oob.img) are in corpus/.
//
// Build and run: fuzz/run.sh. Reproduce one input: fuzz/run.sh --repro FILE.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "check.hpp"
#include "segment_walk.hpp"
#include "admin.hpp"
#include "registry.hpp"

namespace {

using sessionbroker::ErrorCode;
using sessionbroker::Status;
using sessionbroker::detail::Segment;
namespace shm = sessionbroker::shm;

bool g_deep = false;
constexpr std::align_val_t kAlign{alignof(shm::SegmentHeader)};

// A heap copy of exactly `size` bytes, aligned as SegmentHeader requires (atomic_ref needs it), and
// ASan-checked at its end, unlike a mapping (which would silently run into whatever page follows).
struct Image {
  Image(const std::uint8_t* data, std::size_t n) : size(n) {
    base = static_cast<unsigned char*>(::operator new(n ? n : 1, kAlign));
    if (n) std::memcpy(base, data, n);
  }
  ~Image() { ::operator delete(base, kAlign); }
  Image(const Image&) = delete;
  Image& operator=(const Image&) = delete;
  unsigned char* base;
  std::size_t size;
};

// "Always a clear error": a typed code from the two that describe a bad image, and a message.
void check_error(const Status& s) {
  if (s.is_ok()) return;
  if (s.code() != ErrorCode::kCorrupt && s.code() != ErrorCode::kIncompatible) __builtin_trap();
  if (s.message().empty()) __builtin_trap();
}

// What an OK from validate() promises about the header.
void check_promises(const unsigned char* base, std::uint64_t size) {
  if (size < sizeof(shm::SegmentHeader)) __builtin_trap();
  const auto& h = *reinterpret_cast<const shm::SegmentHeader*>(base);
  if (h.magic != shm::kMagic || h.layout_version != shm::kLayoutVersion) __builtin_trap();
  if (h.fingerprint != shm::layout_fingerprint()) __builtin_trap();
  const auto regions = shm::compute_regions(h.caps);
  if (!regions || !shm::same_regions(*regions, h.regions) || regions->end != size) __builtin_trap();
  if (size % 4096 != 0) __builtin_trap();
}

Status validate_prefix(const std::uint8_t* data, std::size_t n) {
  Image img(data, n);
  Status s = Segment::validate(img.base, img.size);
  check_error(s);
  return s;
}

void deep_walk(Image& img) {
  // Fresh mutexes: the walk under test is the data, not pthread's handling of garbage locks.
  auto& h = *reinterpret_cast<shm::SegmentHeader*>(img.base);
  shm::robust_mutex_init(h.registry_mutex);
  shm::robust_mutex_init(h.alloc_mutex);
  sbfuzz::SegmentView view(img.base, img.size);
  Segment& seg = view.get();
  for (std::uint32_t i = 0; i < seg.caps().max_sessions; ++i) shm::robust_mutex_init(seg.session(i).mutex);
  sessionbroker::detail::Admin admin(seg);
  try {
    (void)sessionbroker::detail::Registry(seg).list_sessions();
    (void)sessionbroker::detail::check_segment(seg);
    for (std::uint32_t i = 0; i < seg.caps().max_sessions; ++i) (void)admin.snapshot(i);
  } catch (const shm::SegmentCorrupt&) {
    // The defined outcome for an index out of range (Segment's checked accessors): kCorrupt at the
    // library's boundary. A wild access or any other exception is still a finding.
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* deep = std::getenv("SB_FUZZ_DEEP");
  g_deep = deep && *deep && std::strcmp(deep, "0") != 0;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Shorter views of the same bytes: a prefix smaller than a header always, and the image one page
  // shorter (a truncated object). Neither may validate if the full image does.
  const std::size_t tiny = std::min<std::size_t>(size, sizeof(shm::SegmentHeader) - 1);
  if (validate_prefix(data, tiny).is_ok()) __builtin_trap();

  Image img(data, size);
  const Status s = Segment::validate(img.base, img.size);
  check_error(s);
  if (!s.is_ok()) return 0;
  check_promises(img.base, img.size);
  if (size > 4096 && validate_prefix(data, size - 4096).is_ok()) __builtin_trap();

  {
    sbfuzz::SegmentView view(img.base, img.size);
    (void)sbfuzz::walk_segment(view.get());
  }
  if (g_deep) deep_walk(img);
  return 0;
}
