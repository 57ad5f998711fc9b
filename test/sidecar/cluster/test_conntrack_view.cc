// `mixlbctl ct` below the admin layer: filters, the listing of a real LRU
// table (a map of the connection table's shape), and the entries the data
// path itself makes (their creation time).
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <bpf/bpf.h>

#include <cstring>

#include "cluster/conntrack_view.h"
#include "cluster/node_id.h"
#include "kernel/conntrack_walk.h"
#include "kernel/unique_fd.h"
#include "netns_fixture.h"

namespace mixlb {
namespace {

mixlb_flow_key flow(const char* client, std::uint16_t sport, const char* vip, std::uint16_t vport,
                    std::uint8_t proto = 6) {
  mixlb_flow_key k{};
  const auto c = *Address::parse(client);
  const auto v = *Address::parse(vip);
  std::memcpy(k.src, c.words.data(), sizeof(k.src));
  std::memcpy(k.dst, v.words.data(), sizeof(k.dst));
  k.sport = htons(sport);
  k.dport = htons(vport);
  k.proto = proto;
  k.family = c.is_v6() ? MIXLB_AF_INET6 : MIXLB_AF_INET;
  return k;
}

mixlb_ct_value entry(const char* node, std::uint64_t seen, std::uint32_t flags = MIXLB_CT_SEEN_SYN) {
  mixlb_ct_value v{};
  v.node_id = node_id_for(node);
  v.last_seen_ns = seen;
  v.flags = flags;
  v.created_s = static_cast<std::uint32_t>(seen / 1'000'000'000ull);
  return v;
}

TEST_SUITE("ct") {
  TEST_CASE("--vip takes an address, a port, a protocol, IPv6 in brackets; anything else is refused") {
    CtFilter f;
    CHECK_FALSE(parse_ct_vip("10.100.0.1:80/tcp", f));
    CHECK(f.vip == Address::parse("10.100.0.1"));
    CHECK(f.vip_port == 80);
    CHECK(f.proto == 6);
    CtFilter g;
    CHECK_FALSE(parse_ct_vip("[fd00:100::1]:5300/udp", g));
    CHECK(g.vip == Address::parse("fd00:100::1"));
    CHECK(g.vip_port == 5300);
    CHECK(g.proto == 17);
    CtFilter h;
    CHECK_FALSE(parse_ct_vip("fd00:100::1", h));
    CHECK_FALSE(h.vip_port);
    CtFilter i;
    CHECK_FALSE(parse_ct_vip("10.100.0.1", i));
    for (const char* bad : {"10.100.0.1:0", "10.100.0.1:70000", "10.100.0.1/sctp", "[fd00::1", "vip",
                            "10.100.0.1:http", ""}) {
      CAPTURE(bad);
      CtFilter b;
      const auto problem = parse_ct_vip(bad, b);
      REQUIRE(problem);
      CHECK(problem->starts_with("--vip: '" + std::string(bad) + "' is not ADDR"));
    }
  }

  TEST_CASE("filters: VIP (address, port, protocol), serving node, client") {
    const auto k = flow("10.0.1.2", 41000, "10.100.0.1", 80);
    const auto v = entry("mix2", 1);
    CtFilter all;
    CHECK(all.matches(k, v));
    CtFilter f;
    REQUIRE_FALSE(parse_ct_vip("10.100.0.1:80/tcp", f));
    CHECK(f.matches(k, v));
    CHECK_FALSE(f.matches(flow("10.0.1.2", 41000, "10.100.0.1", 7000), v));
    CHECK_FALSE(f.matches(flow("10.0.1.2", 41000, "10.100.0.1", 80, 17), v));
    CHECK_FALSE(f.matches(flow("10.0.1.2", 41000, "10.100.0.2", 80), v));
    f.node_id = node_id_for("mix2");
    CHECK(f.matches(k, v));
    CHECK_FALSE(f.matches(k, entry("mix3", 1)));
    f.client = Address::parse("10.0.1.2");
    CHECK(f.matches(k, v));
    CHECK_FALSE(f.matches(flow("10.0.1.3", 41000, "10.100.0.1", 80), v));
  }

  TEST_CASE("entries read back as text") {
    CHECK(flow_client(flow("10.0.1.2", 41000, "10.100.0.1", 80)) == "10.0.1.2:41000");
    CHECK(flow_vip(flow("fd00:1::2", 5, "fd00:100::1", 443)) == "[fd00:100::1]:443");
    CHECK(ct_flags_text(0) == "-");
    CHECK(ct_flags_text(MIXLB_CT_SEEN_SYN | MIXLB_CT_SEEN_FIN) == "syn,fin");
    CHECK(ct_flags_text(MIXLB_CT_SEEN_RST | MIXLB_CT_FROM_NON_SYN) == "rst,mid-stream");
  }

}

TEST_SUITE("ct-datapath" * doctest::skip(cannot_run())) {
  TEST_CASE("a listing counts every match and keeps the most recent, up to the limit") {
    const int fd = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, "ct_view_test", sizeof(mixlb_flow_key),
                                  sizeof(mixlb_ct_value), 4096, nullptr);
    REQUIRE(fd >= 0);
    const UniqueFd owner(fd);
    const std::uint64_t now = coarse_now_ns();
    // 300 flows to :80 served by mix1, seen 1..300 s ago; 200 to :7000 served by mix2.
    for (std::uint16_t i = 0; i < 300; ++i) {
      const auto k = flow("10.0.1.2", static_cast<std::uint16_t>(10000 + i), "10.100.0.1", 80);
      const auto v = entry("mix1", now - (i + 1) * 1'000'000'000ull);
      REQUIRE(bpf_map_update_elem(fd, &k, &v, BPF_ANY) == 0);
    }
    for (std::uint16_t i = 0; i < 200; ++i) {
      const auto k = flow("10.0.1.3", static_cast<std::uint16_t>(20000 + i), "10.100.0.1", 7000);
      const auto v = entry("mix2", now);
      REQUIRE(bpf_map_update_elem(fd, &k, &v, BPF_ANY) == 0);
    }
    CtFilter f;
    REQUIRE_FALSE(parse_ct_vip("10.100.0.1:80", f));
    const auto listing = list_conntrack(fd, f, 10);
    REQUIRE_MESSAGE(listing.has_value(), (listing ? "" : listing.error().message()));
    CHECK(listing->entries == 500);
    CHECK(listing->capacity == 4096);
    CHECK(listing->matched == 300);
    REQUIRE(listing->shown.size() == 10);
    // The most recent first: the flows seen 1, 2, ... 10 s ago (ports 10000..10009).
    for (std::size_t i = 0; i < 10; ++i) CHECK(ntohs(listing->shown[i].key.sport) == 10000 + i);

    CtFilter by_node;
    by_node.node_id = node_id_for("mix2");
    const auto counted = list_conntrack(fd, by_node, 0);
    REQUIRE(counted.has_value());
    CHECK(counted->matched == 200);
    CHECK(counted->shown.empty());
  }
}

}  // namespace
}  // namespace mixlb
