#include "workload.hpp"

#include <charconv>
#include <chrono>
#include <sstream>
#include <thread>

#include <fmt/format.h>

namespace app {
namespace {

constexpr auto kWork = std::chrono::microseconds(50);

std::optional<long> to_long(std::string_view s) {
  long v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

std::string user_id(int user) { return fmt::format("user:{}", user); }

Cart Cart::parse(std::string_view text) {
  Cart c;
  while (!text.empty()) {
    const auto space = text.find(' ');
    const std::string_view token = text.substr(0, space);
    text = space == std::string_view::npos ? std::string_view() : text.substr(space + 1);
    const auto colon = token.find(':');
    if (token.substr(0, 4) != "sku-" || colon == std::string_view::npos) continue;
    const auto sku = to_long(token.substr(4, colon - 4));
    const auto qty = to_long(token.substr(colon + 1));
    if (sku && qty && *sku >= 1 && *sku <= kSkus) c.quantity[static_cast<std::size_t>(*sku - 1)] = *qty;
  }
  return c;
}

std::string Cart::serialize() const {
  std::string out;
  for (int s = 0; s < kSkus; ++s) {
    const long q = quantity[static_cast<std::size_t>(s)];
    if (q > 0) out += fmt::format("{}sku-{}:{}", out.empty() ? "" : " ", s + 1, q);
  }
  return out;
}

long Cart::items() const {
  long n = 0;
  for (long q : quantity) n += q;
  return n;
}

long parse_views(std::string_view profile) {
  if (profile.substr(0, 6) != "views:") return 0;
  return to_long(profile.substr(6)).value_or(0);
}

std::string serialize_views(long views) { return fmt::format("views:{}", views); }

Request Traffic::next() {
  const int p = percent_(rng_);
  const Kind kind = p < 60 ? Kind::kAddToCart : p < 90 ? Kind::kViewPage : Kind::kCheckoutPage;
  return {kind, user_(rng_), sku_(rng_)};
}

void Tally::count(const Request& r) {
  ++requests;
  const auto u = static_cast<std::size_t>(r.user);
  if (r.kind == Kind::kAddToCart) ++items_added[u];
  if (r.kind == Kind::kViewPage) ++views[u];
}

void Tally::fail(std::string error) {
  for (char& c : error)
    if (c == '\n' || c == '|') c = ' ';  // keeps the report one line
  if (failures++ == 0) first_error = std::move(error);
}

void Tally::merge(const Tally& o) {
  for (std::size_t u = 0; u < items_added.size() && u < o.items_added.size(); ++u) {
    items_added[u] += o.items_added[u];
    views[u] += o.views[u];
  }
  requests += o.requests;
  process_grants += o.process_grants;
  if (failures == 0 && o.failures > 0) first_error = o.first_error;
  failures += o.failures;
}

long Tally::total_items() const {
  long n = 0;
  for (long v : items_added) n += v;
  return n;
}

long Tally::total_views() const {
  long n = 0;
  for (long v : views) n += v;
  return n;
}

// "requests grants failures items... views... | first error"
std::string Tally::serialize() const {
  std::string out = fmt::format("{} {} {}", requests, process_grants, failures);
  for (long v : items_added) out += fmt::format(" {}", v);
  for (long v : views) out += fmt::format(" {}", v);
  return out + " |" + first_error;
}

std::optional<Tally> Tally::parse(std::string_view line, int users) {
  const auto bar = line.find('|');
  if (bar == std::string_view::npos) return std::nullopt;
  Tally t(users);
  std::istringstream in{std::string(line.substr(0, bar))};
  in >> t.requests >> t.process_grants >> t.failures;
  for (long& v : t.items_added) in >> v;
  for (long& v : t.views) in >> v;
  if (!in) return std::nullopt;
  std::string_view error = line.substr(bar + 1);
  while (!error.empty() && error.back() == '\n') error.remove_suffix(1);
  t.first_error = std::string(error);
  return t;
}

void simulate_work() { std::this_thread::sleep_for(kWork); }

}  // namespace app
