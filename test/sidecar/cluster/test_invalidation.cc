#include <doctest/doctest.h>

#include <arpa/inet.h>

#include <cstring>

#include "cluster/invalidation.h"

namespace mixlb {
namespace {

mixlb_flow_key flow4(const char* client, std::uint16_t port, const char* vip, std::uint16_t vport,
                     std::uint8_t proto = 6) {
  mixlb_flow_key k{};
  ::inet_pton(AF_INET, client, &k.src[0]);
  ::inet_pton(AF_INET, vip, &k.dst[0]);
  k.sport = htons(port);
  k.dport = htons(vport);
  k.proto = proto;
  k.family = MIXLB_AF_INET;
  return k;
}

mixlb_flow_key flow6(const char* client, std::uint16_t port, const char* vip, std::uint16_t vport) {
  mixlb_flow_key k{};
  ::inet_pton(AF_INET6, client, k.src);
  ::inet_pton(AF_INET6, vip, k.dst);
  k.sport = htons(port);
  k.dport = htons(vport);
  k.proto = 6;
  k.family = MIXLB_AF_INET6;
  return k;
}

InvalidationBatch sample() {
  InvalidationBatch b;
  b.sender = 0x1234abcd;
  b.sequence = 1700000000000001;
  b.sent_us = 1700000000000100;
  b.closed_us = 1700000000000050;
  b.flows = {flow4("192.0.2.10", 40000, "10.100.0.1", 80), flow6("2001:db8::10", 41000, "fd00:100::1", 443),
             flow4("192.0.2.11", 5353, "10.100.0.1", 53, 17)};
  return b;
}

}  // namespace

TEST_SUITE("invalidation") {
  TEST_CASE("a batch survives encoding: IPv4 and IPv6 flows, TCP and UDP, every header field") {
    const InvalidationBatch b = sample();
    const auto bytes = encode_invalidations(b);
    CHECK(bytes.size() == kInvalidationHeaderSize + 14 + 38 + 14);
    auto back = decode_invalidations(bytes);
    REQUIRE_MESSAGE(back.has_value(), (back ? "" : back.error()));
    CHECK(back->sender == b.sender);
    CHECK(back->sequence == b.sequence);
    CHECK(back->sent_us == b.sent_us);
    CHECK(back->closed_us == b.closed_us);
    REQUIRE(back->flows.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
      CAPTURE(i);
      CHECK(std::memcmp(&back->flows[i], &b.flows[i], sizeof(mixlb_flow_key)) == 0);
    }
  }

  TEST_CASE("a malformed message is refused with the field and offset") {
    const auto good = encode_invalidations(sample());
    auto error_of = [](std::vector<std::uint8_t> bytes) {
      auto r = decode_invalidations(bytes);
      REQUIRE_FALSE(r.has_value());
      return r.error();
    };
    CHECK(error_of({}) == "invalidation: magic: needs 1 byte(s), 0 left at offset 0");
    auto bad = good;
    bad[0] = 0xE1;  // a sealed envelope given as plaintext
    CHECK(error_of(bad) == "invalidation: magic: 0xe1 is not an invalidation's 0x49 at offset 0");
    bad = good;
    std::memset(bad.data() + 1, 0, 4);
    CHECK(error_of(bad) == "invalidation: sender: node id 0 is no node at offset 1");
    bad = good;
    bad[kInvalidationHeaderSize - 2] = 0;
    bad[kInvalidationHeaderSize - 1] = 0;
    CHECK(error_of(bad) == "invalidation: flow count: a message without flows at offset 29");
    bad = good;
    bad[kInvalidationHeaderSize] = 5;
    CHECK(error_of(bad) == "invalidation: flow family: 5 is neither 4 nor 6 (flow 0) at offset 31");
    bad = good;
    bad[kInvalidationHeaderSize + 1] = 1;
    CHECK(error_of(bad) == "invalidation: flow protocol: 1 is neither TCP nor UDP (flow 0) at offset 32");
    bad = good;
    bad.resize(bad.size() - 3);  // the last flow cut in its VIP address
    CHECK(error_of(bad) == "invalidation: flow VIP address: needs 4 byte(s), 1 left at offset 93");
    bad = good;
    bad.push_back(0);
    CHECK(error_of(bad) == "invalidation: end: 1 byte(s) after the last field at offset 97");
  }

  TEST_CASE("replays: each sequence once per sender, a window of 64 for reordering, and an age limit") {
    using V = ReplayGuard::Verdict;
    ReplayGuard guard(std::chrono::milliseconds(30000));
    const std::int64_t now = 1700000000000000;
    CHECK(guard.check(7, 1000, now, now) == V::kFresh);
    CHECK(guard.check(7, 1000, now, now) == V::kReplayed);
    CHECK(guard.check(8, 1000, now, now) == V::kFresh);  // another sender's own sequence
    CHECK(guard.check(7, 1002, now, now) == V::kFresh);
    CHECK(guard.check(7, 1001, now, now) == V::kFresh);  // late, within the window
    CHECK(guard.check(7, 1001, now, now) == V::kReplayed);
    CHECK(guard.check(7, 1070, now, now) == V::kFresh);
    CHECK(guard.check(7, 1007, now, now) == V::kFresh);     // 63 behind: the window's oldest
    CHECK(guard.check(7, 1006, now, now) == V::kReplayed);  // 64 behind: older than the window
    CHECK(guard.check(7, 2000000, now, now) == V::kFresh);  // a restarted sender starts higher
    CHECK(guard.check(7, 1071, now, now) == V::kReplayed);
    // Older or newer than the allowed age: refused before the window is touched.
    CHECK(guard.check(9, 1, now - 30000001, now) == V::kStale);
    CHECK(guard.check(9, 1, now + 30000001, now) == V::kStale);
    CHECK(guard.check(9, 1, now - 29000000, now) == V::kFresh);
    CHECK(guard.senders() == 3);
    guard.forget(9);
    CHECK(guard.senders() == 2);
    // Age alone (gossip events): any order, no window kept.
    CHECK(guard.check_age(now - 29000000, now) == V::kFresh);
    CHECK(guard.check_age(now - 30000001, now) == V::kStale);
    CHECK(guard.check_age(now + 30000001, now) == V::kStale);
    CHECK(guard.senders() == 2);
  }
}

}  // namespace mixlb
