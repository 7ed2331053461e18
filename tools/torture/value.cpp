#include "value.hpp"

#include <cinttypes>
#include <cstdio>

#include <fmt/format.h>

#include "sessionbroker/shm/layout.hpp"

namespace torture {

std::uint64_t digest(std::string_view payload) { return sessionbroker::shm::fnv1a(payload.data(), payload.size()); }

std::string encode(const Value& v) {
  char head[160];
  const int n = std::snprintf(head, sizeof head, "w=%u seq=%" PRIu64 " tok=%" PRIu64 " prev=%" PRIu64 ".%" PRIu64 " dig=%016" PRIx64 "|",
                              v.worker, v.seq, v.token, v.prev_token, v.prev_seq, digest(v.payload));
  return std::string(head, static_cast<std::size_t>(n)) + v.payload;
}

std::optional<Value> decode(std::string_view bytes) {
  const auto bar = bytes.find('|');
  if (bar == std::string_view::npos || bar > 150) return std::nullopt;
  const std::string head(bytes.substr(0, bar));
  Value v;
  std::uint64_t dig = 0;
  if (std::sscanf(head.c_str(), "w=%u seq=%" SCNu64 " tok=%" SCNu64 " prev=%" SCNu64 ".%" SCNu64 " dig=%" SCNx64, &v.worker, &v.seq,
                  &v.token, &v.prev_token, &v.prev_seq, &dig) != 6)
    return std::nullopt;
  v.payload.assign(bytes.substr(bar + 1));
  if (digest(v.payload) != dig) return std::nullopt;
  return v;
}

std::string commit_line(int session, int attr, const Value& v) {
  return fmt::format("c {} {} {} {} {} {} {:016x}\n", session, attr, v.token, v.seq, v.prev_token, v.prev_seq, digest(v.payload));
}

}  // namespace torture
