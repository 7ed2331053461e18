#include "address.hpp"

#include <algorithm>
#include <charconv>

namespace sessionbroker::detail::etcd {
namespace {

Status bad(std::string_view address, const std::string& why) {
  return {ErrorCode::kInvalidArgument, "etcd address \"" + std::string(address) + "\": " + why};
}

bool valid_host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

// "host:port" or "[v6]:port"; returns an empty string when valid, else why not.
std::string check_endpoint(std::string_view ep) {
  if (ep.empty()) return "empty endpoint (stray ',')";
  std::string_view host, port;
  if (ep.front() == '[') {
    const auto close = ep.find(']');
    if (close == std::string_view::npos) return "endpoint \"" + std::string(ep) + "\" has no closing ']'";
    host = ep.substr(1, close - 1);
    if (host.empty() || host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string_view::npos)
      return "endpoint \"" + std::string(ep) + "\" has a malformed IPv6 address";
    if (close + 1 >= ep.size() || ep[close + 1] != ':')
      return "endpoint \"" + std::string(ep) + "\" has no port (expected [ADDRESS]:PORT)";
    port = ep.substr(close + 2);
  } else {
    const auto colon = ep.rfind(':');
    if (colon == std::string_view::npos) return "endpoint \"" + std::string(ep) + "\" has no port (expected HOST:PORT)";
    host = ep.substr(0, colon);
    port = ep.substr(colon + 1);
    if (host.empty()) return "endpoint \"" + std::string(ep) + "\" has no host";
    if (!std::all_of(host.begin(), host.end(), valid_host_char))
      return "endpoint \"" + std::string(ep) + "\" has a malformed host";
  }
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc{} || end != port.data() + port.size() || value == 0 || value > 65535)
    return "endpoint \"" + std::string(ep) + "\" has a port that is not a number in 1..65535";
  return {};
}

}  // namespace

bool is_etcd_address(std::string_view address) { return address.starts_with(kScheme); }

Result<Address> parse_address(std::string_view address) {
  if (!is_etcd_address(address)) return bad(address, "must start with etcd://");
  std::string_view rest = address.substr(kScheme.size());
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos) return bad(address, "has no /PREFIX after the endpoints");
  const std::string_view hosts = rest.substr(0, slash);
  const std::string_view prefix = rest.substr(slash + 1);
  if (hosts.empty()) return bad(address, "lists no endpoint (expected etcd://HOST:PORT[,HOST:PORT...]/PREFIX)");
  if (prefix.empty()) return bad(address, "has an empty PREFIX");
  if (prefix.find('/') != std::string_view::npos) return bad(address, "PREFIX must be one path segment (no '/')");
  if (prefix.find_first_of("?#") != std::string_view::npos || prefix == "." || prefix == "..")
    return bad(address, "PREFIX \"" + std::string(prefix) + "\" is not a plain name");

  Address out;
  out.prefix = prefix;
  std::size_t start = 0;
  while (true) {
    const auto comma = hosts.find(',', start);
    const std::string_view ep = hosts.substr(start, comma == std::string_view::npos ? hosts.npos : comma - start);
    if (auto why = check_endpoint(ep); !why.empty()) return bad(address, why);
    if (std::find(out.endpoints.begin(), out.endpoints.end(), ep) != out.endpoints.end())
      return bad(address, "endpoint \"" + std::string(ep) + "\" is listed twice");
    out.endpoints.emplace_back(ep);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

std::string to_string(const Address& address) {
  std::string s(kScheme);
  for (std::size_t i = 0; i < address.endpoints.size(); ++i) {
    if (i) s += ',';
    s += address.endpoints[i];
  }
  return s + "/" + address.prefix;
}

}  // namespace sessionbroker::detail::etcd
