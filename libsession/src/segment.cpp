#include "segment.hpp"

#include <cctype>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <optional>
#include <pwd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <fmt/format.h>

#include "clock.hpp"
#include "sessionbroker/shm/futex.hpp"

namespace bip = boost::interprocess;

namespace sessionbroker::detail {
namespace {

// Maps the whole object; the mapping outlives the shared_memory_object (POSIX keeps it).
// Asks for 2 MiB pages before any page is touched: the creator's first touch allocates the
// object's pages (huge ones where the mount allows them), and every process's own mapping must
// ask too to map them whole (on a huge=advise mount the kernel looks at each mapping's flag). A
// kernel without transparent huge pages answers EINVAL: 4 KiB pages, as without the call.
Result<std::pair<void*, std::uint64_t>> map_object(bip::shared_memory_object& shm, std::uint64_t size) {
  void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, shm.get_mapping_handle().handle, 0);
  if (base == MAP_FAILED) return Status(ErrorCode::kSystem, fmt::format("mmap: {}", std::strerror(errno)));
  (void)madvise(base, size, MADV_HUGEPAGE);
  return std::pair<void*, std::uint64_t>{base, size};
}

// The value of `huge=` among the options of the tmpfs mounted on /dev/shm ("never" when absent, as
// the kernel defaults); "" when no tmpfs is mounted there.
std::string shm_mount_huge() {
  std::ifstream in("/proc/self/mountinfo");
  std::string line, found;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, point;
    fields >> id >> parent >> dev >> root >> point;
    if (point != "/dev/shm") continue;  // the last match is the mount on top
    const auto at = line.find("huge=");
    found = at == std::string::npos ? "never" : line.substr(at + 5, line.find_first_of(", \n", at) - at - 5);
  }
  return found;
}

// The bracketed choice of a sysfs setting ("always within_size [advise] never" -> "advise"); ""
// when it cannot be read.
std::string sysfs_choice(const char* path) {
  std::ifstream in(path);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto open = all.find('['), close = all.find(']');
  return open == std::string::npos || close < open ? std::string() : all.substr(open + 1, close - open - 1);
}

Status from_boost(const bip::interprocess_exception& e, const std::string& name) {
  switch (e.get_error_code()) {
    case bip::not_found_error:
      return Status(ErrorCode::kNoSegment, fmt::format("segment '{}' does not exist (is session-broker running?)", name));
    case bip::security_error:
      return Status(ErrorCode::kPermissionDenied, fmt::format("segment '{}': permission denied", name));
    case bip::already_exists_error:
      return Status(ErrorCode::kAlreadyExists, fmt::format("segment '{}' already exists", name));
    default:
      return Status(ErrorCode::kSystem, fmt::format("segment '{}': {}", name, e.what()));
  }
}

Status check_name(const std::string& name) {
  if (name.empty() || name.size() > 200 || name.find('/') != std::string::npos)
    return Status(ErrorCode::kInvalidArgument,
                  fmt::format("segment name '{}' must be 1..200 characters without '/'", name));
  return {};
}

}  // namespace

Segment::Segment(std::string name, void* base, std::uint64_t size, uid_t owner, bool owns_mapping)
    : name_(std::move(name)), base_(base), size_(size), owner_uid_(owner), owns_mapping_(owns_mapping) {}

void Segment::bind(const shm::Capacities& caps, const shm::Regions& regions) {
  caps_ = caps;
  record_count_ = caps.max_clients * caps.locks_per_client;
  index_size_ = regions.index_size;
  clients_ = at<shm::ClientSlot>(regions.clients);
  records_ = at<shm::LockRecord>(regions.records);
  sessions_ = at<shm::SessionSlot>(regions.sessions);
  index_ = at<std::uint32_t>(regions.index);
  blocks_ = at<shm::Block>(regions.blocks);
  stats_ = at<shm::ClientStats>(regions.stats);
}

void Segment::out_of_range(std::uint32_t i, std::uint32_t limit, const char* what) {
  throw shm::SegmentCorrupt(fmt::format("segment is corrupt: {} {} read from it is out of range (limit {})", what, i, limit));
}

bool Segment::trusted_owner(uid_t owner) {
  if (owner == geteuid() || owner == 0) return true;
  auto uid_of = [](const char* user) -> std::optional<uid_t> {
    if (!user || !*user) return std::nullopt;
    char* end = nullptr;
    const unsigned long n = std::strtoul(user, &end, 10);
    if (*end == '\0') return static_cast<uid_t>(n);
    passwd pw{};
    passwd* found = nullptr;
    char buf[1024];
    if (getpwnam_r(user, &pw, buf, sizeof buf, &found) != 0 || !found) return std::nullopt;
    return found->pw_uid;
  };
  return owner == uid_of("sessionbroker") || owner == uid_of(std::getenv("SESSIONBROKER_SEGMENT_OWNER"));
}

PageUse Segment::pages() const {
  PageUse use;
  std::ifstream smaps("/proc/self/smaps");
  const std::string start = fmt::format("{:x}-", reinterpret_cast<std::uintptr_t>(base_));
  std::string line;
  bool ours = false;
  while (std::getline(smaps, line)) {
    if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) && line.find('-') < line.find(' ')) {
      if (ours) break;  // the next mapping's header
      ours = line.rfind(start, 0) == 0;
      use.known = use.known || ours;
      continue;
    }
    if (!ours) continue;
    std::uint64_t kb = 0;
    if (std::sscanf(line.c_str(), "Rss: %" SCNu64 " kB", &kb) == 1) use.bytes = kb * 1024;
    else if (std::sscanf(line.c_str(), "ShmemPmdMapped: %" SCNu64 " kB", &kb) == 1) use.huge_bytes = kb * 1024;
  }
  if (!use.known) {
    use.why = "/proc/self/smaps does not show the mapping";
  } else if (use.huge_bytes == 0) {
    const std::string kernel = sysfs_choice("/sys/kernel/mm/transparent_hugepage/shmem_enabled");
    const std::string mount = shm_mount_huge();
    if (kernel.empty()) use.why = "this kernel has no transparent huge pages";
    else if (kernel == "deny") use.why = "the kernel's shmem_enabled is deny";
    else if (mount == "never" && kernel != "force")
      use.why = "the tmpfs on /dev/shm has no huge= option (`mount -o remount,huge=advise /dev/shm` allows them)";
    else use.why = fmt::format("none given (/dev/shm huge={}, shmem_enabled {})", mount, kernel);
  }
  return use;
}

Segment::~Segment() {
  if (owns_mapping_) munmap(base_, size_);
}

std::unique_ptr<Segment> Segment::over_image(void* base, std::uint64_t size) {
  std::unique_ptr<Segment> seg(new Segment(std::string(), base, size, geteuid(), false));
  seg->bind(seg->header().caps, *shm::compute_regions(seg->header().caps));
  return seg;
}

bool Segment::remove(const std::string& name) { return bip::shared_memory_object::remove(name.c_str()); }

Result<std::unique_ptr<Segment>> Segment::create(const std::string& name, const CreateOptions& opts) {
  if (Status s = check_name(name); !s) return s;
  auto regions = shm::compute_regions(opts.caps);
  if (!regions) return Status(ErrorCode::kInvalidArgument, "segment capacities out of range");
  try {
    bip::permissions perm(static_cast<unsigned>(opts.mode));
    // create_only: O_CREAT|O_EXCL, so an existing object (or a planted symlink) is never adopted here.
    bip::shared_memory_object shm(bip::create_only, name.c_str(), bip::read_write, perm);
    const int fd = shm.get_mapping_handle().handle;
    if (opts.gid >= 0 && fchown(fd, static_cast<uid_t>(-1), static_cast<gid_t>(opts.gid)) != 0) {
      Status err(ErrorCode::kPermissionDenied, fmt::format("chgrp of segment '{}': {}", name, std::strerror(errno)));
      bip::shared_memory_object::remove(name.c_str());
      return err;
    }
    shm.truncate(static_cast<bip::offset_t>(regions->end));
    auto mapped = map_object(shm, regions->end);
    if (!mapped) {
      bip::shared_memory_object::remove(name.c_str());
      return mapped.status();
    }
    std::unique_ptr<Segment> seg(new Segment(name, mapped->first, mapped->second, geteuid()));
    seg->bind(opts.caps, *regions);
    seg->initialise(opts.caps, *regions);
    return seg;
  } catch (const bip::interprocess_exception& e) {
    return from_boost(e, name);
  }
}

Result<std::unique_ptr<Segment>> Segment::open(const std::string& name) {
  if (Status s = check_name(name); !s) return s;
  try {
    bip::shared_memory_object shm(bip::open_only, name.c_str(), bip::read_write);
    struct stat st {};
    if (fstat(shm.get_mapping_handle().handle, &st) != 0)
      return Status(ErrorCode::kSystem, fmt::format("fstat of segment '{}': {}", name, std::strerror(errno)));
    if (!trusted_owner(st.st_uid))
      return Status(ErrorCode::kPermissionDenied,
                    fmt::format("segment '{}' belongs to uid {}, not to a trusted user (this user, root, sessionbroker "
                                "or $SESSIONBROKER_SEGMENT_OWNER): refusing it",
                                name, st.st_uid));
    const auto size = static_cast<std::uint64_t>(st.st_size);
    if (size < sizeof(shm::SegmentHeader))
      return Status(ErrorCode::kCorrupt, fmt::format("segment '{}' is {} bytes, smaller than a header", name, size));
    auto mapped = map_object(shm, size);
    if (!mapped) return mapped.status();
    std::unique_ptr<Segment> seg(new Segment(name, mapped->first, size, st.st_uid));
    if (Status s = validate(mapped->first, size); !s)
      return Status(s.code(), fmt::format("segment '{}': {}", name, s.message()));
    seg->bind(seg->header().caps, *shm::compute_regions(seg->header().caps));
    return seg;
  } catch (const bip::interprocess_exception& e) {
    return from_boost(e, name);
  }
}

Status Segment::validate(const void* base, std::uint64_t size) {
  if (size < sizeof(shm::SegmentHeader)) return Status(ErrorCode::kCorrupt, "smaller than a header");
  const auto& h = *static_cast<const shm::SegmentHeader*>(base);
  const std::uint64_t magic = shm::load(h.magic);
  if (magic == 0) return Status(ErrorCode::kCorrupt, "not initialised (creation in progress or interrupted)");
  if (magic != shm::kMagic) return Status(ErrorCode::kCorrupt, "bad magic: not a sessionbroker segment");
  if (h.layout_version != shm::kLayoutVersion)
    return Status(ErrorCode::kIncompatible,
                  fmt::format("layout version {} but this build speaks {}", h.layout_version, shm::kLayoutVersion));
  if (h.header_bytes != sizeof(shm::SegmentHeader) || h.fingerprint != shm::layout_fingerprint())
    return Status(ErrorCode::kIncompatible, "layout fingerprint differs: built with other struct sizes");
  auto expected = shm::compute_regions(h.caps);
  if (!expected) return Status(ErrorCode::kCorrupt, "capacities in the header are out of range");
  if (!shm::same_regions(*expected, h.regions)) return Status(ErrorCode::kCorrupt, "region map does not match capacities");
  if (expected->end != size)
    return Status(ErrorCode::kCorrupt, fmt::format("size {} but the region map needs {}", size, expected->end));
  const std::uint32_t free_head = h.free_head;
  if ((free_head != shm::kNil && free_head >= h.caps.block_count) || h.free_count > h.caps.block_count)
    return Status(ErrorCode::kCorrupt, "free list head out of range");
  return {};
}

// REQUIRES: the segment was just created and no other process can have validated it (magic is 0).
void Segment::initialise(const shm::Capacities& caps, const shm::Regions& regions) {
  // The object is fresh from ftruncate, hence zero-filled: only non-zero fields are written.
  auto& h = header();
  h.layout_version = shm::kLayoutVersion;
  h.header_bytes = sizeof(shm::SegmentHeader);
  h.fingerprint = shm::layout_fingerprint();
  h.caps = caps;
  h.regions = regions;
  h.created_at_ns = real_ns();
  h.next_token = real_ns() / 1000;
  shm::robust_mutex_init(h.registry_mutex);
  shm::robust_mutex_init(h.alloc_mutex);
  for (std::uint32_t i = 0; i < caps.max_clients; ++i) client(i).pending_blob = shm::kNil;
  for (std::uint32_t i = 0; i < record_count(); ++i) record(i).next = shm::kNil;
  for (std::uint32_t i = 0; i < caps.max_sessions; ++i) {
    auto& s = session(i);
    shm::robust_mutex_init(s.mutex);
    s.holders_head = s.queue_head = s.queue_tail = s.blob = shm::kNil;
    s.free_next = i + 1 < caps.max_sessions ? i + 1 : shm::kNil;
  }
  h.session_free_head = 0;
  for (std::uint32_t i = 0; i < regions.index_size; ++i) index_word(i) = shm::kIndexEmpty;
  for (std::uint32_t i = 0; i < caps.block_count; ++i) block(i).next = i + 1 < caps.block_count ? i + 1 : shm::kNil;
  h.free_head = 0;
  h.free_count = caps.block_count;
  shm::store(h.magic, shm::kMagic);  // publish: attachers may now trust the segment
}

}  // namespace sessionbroker::detail
