// parse_address: the one accepted form, and a clear kInvalidArgument for every malformed part.
#include <gtest/gtest.h>

#include "etcd_client.hpp"

namespace sessionbroker::detail::etcd {
namespace {

TEST(EtcdAddress, ParsesEndpointsAndPrefix) {
  auto a = parse_address("etcd://127.0.0.1:2379,localhost:12379,[::1]:2379/shop");
  ASSERT_TRUE(a) << a.status().to_string();
  EXPECT_EQ(a->endpoints, (std::vector<std::string>{"127.0.0.1:2379", "localhost:12379", "[::1]:2379"}));
  EXPECT_EQ(a->prefix, "shop");
  EXPECT_EQ(to_string(*a), "etcd://127.0.0.1:2379,localhost:12379,[::1]:2379/shop");
  auto one = parse_address("etcd://etcd-1.example:2379/p");
  ASSERT_TRUE(one);
  EXPECT_EQ(one->endpoints.size(), 1u);
}

TEST(EtcdAddress, TellsAnEtcdAddressFromASegmentName) {
  EXPECT_TRUE(is_etcd_address("etcd://h:1/p"));
  EXPECT_TRUE(is_etcd_address("etcd://"));
  EXPECT_FALSE(is_etcd_address("sessionbroker"));
  EXPECT_FALSE(is_etcd_address("ETCD://h:1/p"));
}

// Each malformed form, with the words its message must contain.
TEST(EtcdAddress, RefusesEveryMalformedPart) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "must start with etcd://"},
      {"http://h:1/p", "must start with etcd://"},
      {"etcd:/h:1/p", "must start with etcd://"},
      {"etcd://h:1", "no /PREFIX"},
      {"etcd:///p", "lists no endpoint"},
      {"etcd://h:1/", "empty PREFIX"},
      {"etcd://h:1/a/b", "one path segment"},
      {"etcd://h:1/p/", "one path segment"},
      {"etcd://h:1/..", "not a plain name"},
      {"etcd://h:1/p?x=1", "not a plain name"},
      {"etcd://h/p", "has no port"},
      {"etcd://h:/p", "not a number in 1..65535"},
      {"etcd://h:0/p", "not a number in 1..65535"},
      {"etcd://h:65536/p", "not a number in 1..65535"},
      {"etcd://h:12ab/p", "not a number in 1..65535"},
      {"etcd://h:-1/p", "not a number in 1..65535"},
      {"etcd://:2379/p", "has no host"},
      {"etcd://h*st:1/p", "malformed host"},
      {"etcd://h:1,,g:2/p", "stray ','"},
      {"etcd://h:1,/p", "stray ','"},
      {"etcd://,h:1/p", "stray ','"},
      {"etcd://h:1,h:1/p", "listed twice"},
      {"etcd://[::1:2379/p", "no closing ']'"},
      {"etcd://[]:2379/p", "malformed IPv6"},
      {"etcd://[::1]/p", "has no port"},
      {"etcd://[::1]2379/p", "has no port"},
  };
  for (const auto& [text, why] : cases) {
    auto a = parse_address(text);
    ASSERT_FALSE(a) << text << " was accepted";
    EXPECT_EQ(a.code(), ErrorCode::kInvalidArgument) << text;
    EXPECT_NE(a.status().message().find(why), std::string::npos)
        << text << ": message \"" << a.status().message() << "\" does not say \"" << why << "\"";
    EXPECT_NE(a.status().message().find(text), std::string::npos) << "the message quotes the address";
  }
}

TEST(EtcdAddress, PrefixEndCoversExactlyThePrefix) {
  EXPECT_EQ(prefix_end("a/"), "a0");
  EXPECT_EQ(prefix_end(std::string("a\xff", 2)), "b");
  EXPECT_EQ(prefix_end(""), std::string(1, '\0'));
}

}  // namespace
}  // namespace sessionbroker::detail::etcd
