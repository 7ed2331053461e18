// The etcd store address: "etcd://HOST:PORT[,HOST:PORT...]/PREFIX".
//
// HOST is a name, an IPv4 address or a bracketed IPv6 address ("[::1]"); PORT is 1..65535.
// PREFIX is exactly one non-empty path segment (no '/'): every key the store writes starts with
// "PREFIX/". Any listed endpoint may be dead; the client fails over among them.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "sessionbroker/error.hpp"

namespace sessionbroker::detail::etcd {

struct Address {
  std::vector<std::string> endpoints;  // "host:port", in the order given (duplicates refused)
  std::string prefix;                  // one segment, no '/'
};

inline constexpr std::string_view kScheme = "etcd://";

// True when the string names an etcd store (starts with "etcd://"), well formed or not.
bool is_etcd_address(std::string_view address);

// kInvalidArgument, with a message naming the malformed part, for anything but the form above.
Result<Address> parse_address(std::string_view address);

// "etcd://h1:p1,h2:p2/prefix": the inverse of parse_address.
std::string to_string(const Address& address);

}  // namespace sessionbroker::detail::etcd
