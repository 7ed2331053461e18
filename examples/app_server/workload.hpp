// The simulated traffic of the app server: users who each have a session with a shopping cart and
// a profile, and the requests a worker thread serves for them. Nothing here knows where session
// state is kept (stores.hpp) or how workers are started (prefork.hpp).
//
// Session state, as both runs store it (strings, so that either store can hold them):
//   cart     "sku-1:3 sku-4:1"   quantity per SKU; the items in the cart are the sum
//   profile  "views:12"          pages this user has viewed
// Thread safety: values only; a Traffic belongs to one thread.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace app {

inline constexpr const char* kCart = "cart";
inline constexpr const char* kProfile = "profile";
inline constexpr int kSkus = 8;

std::string user_id(int user);  // "user:3": the session id

struct Cart {
  std::array<long, kSkus> quantity{};
  // Ignores what it cannot read (a torn read of the naive store reads as less).
  static Cart parse(std::string_view text);
  std::string serialize() const;
  long items() const;
};

long parse_views(std::string_view profile);
std::string serialize_views(long views);

enum class Kind {
  kAddToCart,     // changes the cart
  kViewPage,      // changes the profile
  kCheckoutPage,  // reads both, changes nothing
};

struct Request {
  Kind kind;
  int user;
  int sku;
};

// The requests one worker thread serves: a deterministic mix for (worker, thread).
class Traffic {
 public:
  Traffic(int worker, int thread, int users)
      : rng_(static_cast<std::uint32_t>(worker * 1009 + thread * 7919 + 1)), user_(0, users - 1), sku_(0, kSkus - 1) {}
  Request next();

 private:
  std::mt19937 rng_;
  std::uniform_int_distribution<int> user_, sku_, percent_{0, 99};
};

// What served requests should have done to the stored state, per user.
struct Tally {
  std::vector<long> items_added, views;  // indexed by user
  long requests = 0;
  long process_grants = 0;  // sessionbroker run: lock() calls that took the session lock from the store
  long failures = 0;
  std::string first_error;

  explicit Tally(int users = 0) : items_added(static_cast<std::size_t>(users)), views(static_cast<std::size_t>(users)) {}
  void count(const Request& r);
  void fail(std::string error);
  void merge(const Tally& other);
  long total_items() const;
  long total_views() const;
  // One line of text (a worker sends it to the parent over a pipe).
  std::string serialize() const;
  static std::optional<Tally> parse(std::string_view line, int users);
};

// What the stores hold for one user at the end of a run.
struct UserState {
  long items = 0;
  long views = 0;
};

// The part of a request that is neither reading nor writing the session (a call to a pricing
// service, a template render): it is what makes concurrent requests of one user overlap.
void simulate_work();

}  // namespace app
