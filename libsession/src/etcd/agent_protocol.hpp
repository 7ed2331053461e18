// The wire between an application process and its etcd agent (agent_backend.hpp, agent_main.cpp):
// length-prefixed frames on a Unix stream socket, one request and one reply per call, matched by
// id. Both ends are the same build (the library execs the agent next to it), so the format has no
// version: a frame that does not parse is a broken agent, and the caller gets kUnavailable.
//
//   request: u32 length (of what follows), u64 id, u8 op, payload
//   reply:   u32 length, u64 id, u8 code (ErrorCode), str message, payload (when code is kOk)
//   str:     u32 length, bytes. Integers little-endian.
//
// Frame 0 (id 0, from the agent, unasked) says whether attaching to the store worked.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace sessionbroker::detail::etcd::agent {

enum class Op : std::uint8_t {
  kClose = 1,
  kDetach,
  kCreate,        // str id, u64 ttl_ms -> handle
  kOpen,          // str id -> handle
  kOpenOrCreate,  // str id, u64 ttl_ms -> handle, u8 created
  kDestroy,       // handle, u8 has_own, grant -> -
  kList,          // - -> u32 n, n x str
  kHolders,       // handle -> u32 n, n x u32 pid
  kAcquire,       // handle, u8 exclusive, i64 deadline (steady clock ns) -> grant
  kTryAcquire,    // handle, u8 exclusive -> grant
  kRelease,       // handle, grant -> -
  kTouch,         // handle -> -
  kSetTtl,        // handle, grant, u64 ttl_ms -> -
  kTouchFenced,   // handle, grant -> -
  kTtlRemaining,  // handle, grant -> u8 has, u64 ms
  kRead,          // handle, grant, str name -> u8 found, str value
  kReadAll,       // handle, grant -> u32 n, n x (str name, str value)
  kCommit,        // handle, grant, u32 n, n x (str name, u8 has, str value) -> -
};

inline constexpr std::uint32_t kMaxFrame = 64u << 20;  // far above any session (kMaxSessionBytes)

class Writer {
 public:
  void u8(std::uint8_t v) { out_ += static_cast<char>(v); }
  void u32(std::uint32_t v) { raw(&v, 4); }
  void u64(std::uint64_t v) { raw(&v, 8); }
  void str(std::string_view s) {
    u32(static_cast<std::uint32_t>(s.size()));
    out_ += s;
  }
  const std::string& bytes() const { return out_; }
  // A frame: the length, then what was written, ready to send.
  std::string frame() const {
    std::string f;
    const std::uint32_t n = static_cast<std::uint32_t>(out_.size());
    f.append(reinterpret_cast<const char*>(&n), 4);
    return f + out_;
  }

 private:
  void raw(const void* p, std::size_t n) { out_.append(static_cast<const char*>(p), n); }  // little-endian host
  std::string out_;
};

// Reads a frame's fields; any read past the end sets failed() and yields zeros.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  std::uint8_t u8() {
    std::uint8_t v = 0;
    raw(&v, 1);
    return v;
  }
  std::uint32_t u32() {
    std::uint32_t v = 0;
    raw(&v, 4);
    return v;
  }
  std::uint64_t u64() {
    std::uint64_t v = 0;
    raw(&v, 8);
    return v;
  }
  std::string str() {
    const std::uint32_t n = u32();
    if (failed_ || n > in_.size()) {
      failed_ = true;
      return {};
    }
    std::string s(in_.substr(0, n));
    in_.remove_prefix(n);
    return s;
  }
  bool failed() const { return failed_; }

 private:
  void raw(void* p, std::size_t n) {
    if (failed_ || in_.size() < n) {
      failed_ = true;
      return;
    }
    std::memcpy(p, in_.data(), n);
    in_.remove_prefix(n);
  }
  std::string_view in_;
  bool failed_ = false;
};

// Blocking helpers on a stream socket (EINTR retried). read_frame: the frame's body without its
// length, or false at EOF or on error.
bool write_all(int fd, std::string_view bytes);
bool read_frame(int fd, std::string& body);

}  // namespace sessionbroker::detail::etcd::agent
