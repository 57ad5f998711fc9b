// `mixlbctl ct` below the admin layer: filters, the listing of a real LRU
// table (a map of the connection table's shape), and the entries the data
// path itself makes (their creation time).
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <bpf/bpf.h>

#include <algorithm>
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

  TEST_CASE("the sweeper's rules: UDP idle, TCP closing idle, TCP idle; 0 keeps; never a fresh entry") {
    const std::uint64_t s = 1'000'000'000ull, now = 10'000 * s;
    const SweepRules rules{.udp_idle_ns = 120 * s, .tcp_closing_idle_ns = 30 * s, .tcp_idle_ns = 3600 * s};
    const auto udp = flow("10.0.1.2", 5, "10.100.0.1", 53, 17);
    const auto tcp = flow("10.0.1.2", 5, "10.100.0.1", 80);
    CHECK(sweep_reason(rules, udp, entry("mix1", now - 121 * s, 0), now) == SweepReason::kUdpIdle);
    CHECK_FALSE(sweep_reason(rules, udp, entry("mix1", now - 119 * s, 0), now));
    CHECK(sweep_reason(rules, tcp, entry("mix1", now - 31 * s, MIXLB_CT_SEEN_SYN | MIXLB_CT_SEEN_FIN), now) ==
          SweepReason::kTcpClosing);
    CHECK(sweep_reason(rules, tcp, entry("mix1", now - 31 * s, MIXLB_CT_SEEN_RST), now) ==
          SweepReason::kTcpClosing);
    CHECK_FALSE(sweep_reason(rules, tcp, entry("mix1", now - 31 * s), now));  // established: an hour
    CHECK(sweep_reason(rules, tcp, entry("mix1", now - 3601 * s), now) == SweepReason::kTcpIdle);
    CHECK_FALSE(sweep_reason(rules, tcp, entry("mix1", now + s), now));  // seen during the walk
    const SweepRules keep{};  // every rule 0: nothing is ever removed
    CHECK_FALSE(sweep_reason(keep, udp, entry("mix1", 1, 0), now));
    CHECK_FALSE(sweep_reason(keep, tcp, entry("mix1", 1, MIXLB_CT_SEEN_FIN), now));
    CHECK_FALSE(sweep_reason(keep, tcp, entry("mix1", 1), now));
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

  TEST_CASE("a sweep removes exactly the idle entries its rules name and counts them") {
    const int fd = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, "ct_sweep_test", sizeof(mixlb_flow_key),
                                  sizeof(mixlb_ct_value), 4096, nullptr);
    REQUIRE(fd >= 0);
    const UniqueFd owner(fd);
    // The entries are dated back from now on the monotonic clock, which
    // starts at boot: on a machine up for less than the oldest age (7200 s)
    // every age and rule is scaled down alike. `s` is the test's second.
    const std::uint64_t now = coarse_now_ns();
    const std::uint64_t s = std::min<std::uint64_t>(1'000'000'000ull, now / 7300);
    REQUIRE_MESSAGE(s >= 10'000'000ull, "the clock is too young to date entries back: up " << now / 1'000'000 << " ms");
    std::uint16_t port = 10000;
    const auto add = [&](std::uint8_t proto, std::uint64_t idle_s, std::uint32_t flags, int n) {
      for (int i = 0; i < n; ++i) {
        const auto k = flow("10.0.1.2", port++, "10.100.0.1", proto == 17 ? 53 : 80, proto);
        const auto v = entry("mix1", now - idle_s * s, flags);
        REQUIRE(bpf_map_update_elem(fd, &k, &v, BPF_ANY) == 0);
      }
    };
    add(17, 300, 0, 40);                                      // UDP, idle 5 min: swept
    add(17, 1, 0, 10);                                        // UDP, just now: kept
    add(6, 60, MIXLB_CT_SEEN_SYN | MIXLB_CT_SEEN_FIN, 30);    // closed a minute ago: swept
    add(6, 1, MIXLB_CT_SEEN_SYN | MIXLB_CT_SEEN_FIN, 5);      // closing just now: kept
    add(6, 7200, MIXLB_CT_SEEN_SYN, 20);                      // silent for 2 h: swept
    add(6, 600, MIXLB_CT_SEEN_SYN, 25);                       // idle 10 min, alive: kept
    const SweepRules rules{.udp_idle_ns = 120 * s, .tcp_closing_idle_ns = 30 * s, .tcp_idle_ns = 3600 * s};
    const auto swept = sweep_conntrack(fd, rules);
    REQUIRE_MESSAGE(swept.has_value(), (swept ? "" : swept.error().message()));
    CHECK(swept->walked == 130);
    CHECK(swept->udp_idle == 40);
    CHECK(swept->tcp_closing == 30);
    CHECK(swept->tcp_idle == 20);
    CHECK(swept->kept_late == 0);
    const auto left = list_conntrack(fd, CtFilter{}, 0);
    REQUIRE(left.has_value());
    CHECK(left->entries == 40);
    // A second sweep finds nothing more; without a TCP idle rule the silent
    // flows would have stayed.
    const auto again = sweep_conntrack(fd, rules);
    REQUIRE(again.has_value());
    CHECK(again->removed() == 0);
    add(6, 7200, MIXLB_CT_SEEN_SYN, 3);
    const auto lenient = sweep_conntrack(fd, SweepRules{.udp_idle_ns = 120 * s, .tcp_closing_idle_ns = 30 * s});
    REQUIRE(lenient.has_value());
    CHECK(lenient->removed() == 0);
  }
}

}  // namespace
}  // namespace mixlb
