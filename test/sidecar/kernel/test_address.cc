#include <arpa/inet.h>

#include <doctest/doctest.h>

#include "kernel/address.h"

namespace mixlb {

TEST_SUITE("address") {

TEST_CASE("IPv4 and IPv6 addresses parse into network-order words and print back") {
  auto v4 = Address::parse("10.0.0.11");
  REQUIRE(v4.has_value());
  CHECK(v4->is_v4());
  CHECK(v4->words[0] == htonl(0x0a00000b));
  CHECK(v4->words[1] == 0);
  CHECK(v4->to_string() == "10.0.0.11");
  auto v6 = Address::parse("2001:db8::1");
  REQUIRE(v6.has_value());
  CHECK(v6->is_v6());
  CHECK(v6->words[0] == htonl(0x20010db8));
  CHECK(v6->words[3] == htonl(1));
  CHECK(v6->to_string() == "2001:db8::1");
}

TEST_CASE("malformed addresses are refused") {
  for (const char* bad : {"", "10.0.0", "10.0.0.256", "10.0.0.1/24", "host", "2001:db8:::1", " 10.0.0.1"}) {
    CAPTURE(bad);
    CHECK_FALSE(Address::parse(bad).has_value());
  }
}

}  // TEST_SUITE

}  // namespace mixlb
