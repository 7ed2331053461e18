// The values the torture workers write: self-describing, so that any value read back can be checked
// for tearing (digest of the payload) and placed in commit order (token, then the writer's seq).
//
//   "w=<worker> seq=<n> tok=<token> prev=<token>.<seq> dig=<hex>|<payload>"
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace torture {

struct Value {
  std::uint32_t worker = 0;
  std::uint64_t seq = 0;       // per worker, increasing with every commit it attempts
  std::uint64_t token = 0;     // the process lock's token the commit was made under
  std::uint64_t prev_token = 0, prev_seq = 0;  // the value it replaced (0.0 for none)
  std::string payload;

  // Commit order of values of one attribute: (token, seq) strictly increases.
  bool after(const Value& o) const { return token != o.token ? token > o.token : seq > o.seq; }
};

std::string encode(const Value& v);
// nullopt when the bytes are not a whole value (a torn or foreign write).
std::optional<Value> decode(std::string_view bytes);
std::uint64_t digest(std::string_view payload);
// The commit log's line for an acknowledged commit of attribute `attr` of session `session`.
std::string commit_line(int session, int attr, const Value& v);

}  // namespace torture
