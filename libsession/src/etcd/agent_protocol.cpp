#include "etcd/agent_protocol.hpp"

#include <cerrno>

#include <unistd.h>

namespace sessionbroker::detail::etcd::agent {

bool write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

namespace {
bool read_exact(int fd, char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t r = ::read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}
}  // namespace

bool read_frame(int fd, std::string& body) {
  std::uint32_t n = 0;
  if (!read_exact(fd, reinterpret_cast<char*>(&n), 4) || n > kMaxFrame) return false;
  body.resize(n);
  return read_exact(fd, body.data(), n);
}

}  // namespace sessionbroker::detail::etcd::agent
