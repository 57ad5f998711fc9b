// `which` ("which node would serve this flow?") against the program that
// serves traffic: a dry-run XdpProgram sharing the serving program's maps,
// driven through the daemon's own FlowOracle, must name for each flow the
// node the serving program then actually picks (its verdict and MAC
// rewrite), and must leave every map as it found it. The argument parser and
// the probe frame's checksums are checked here too; they need no kernel.
#include <arpa/inet.h>
#include <doctest/doctest.h>

#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cluster/cluster_sync.h"
#include "cluster/node_id.h"
#include "daemon.h"
#include "kernel/bpf_test_run.h"
#include "kernel/datapath.h"
#include "netns_fixture.h"
#include "packet.h"
#include "settings.h"

namespace mixlb {
namespace {

using nlohmann::json;
using test::Bytes;
using test::Frame;

const test::Mac kPeerMac{0x02, 0xaa, 0, 0, 0, 0x02};   // 10.0.0.2 in netns_fixture.h
const test::Mac kPeer6Mac{0x02, 0xaa, 0, 0, 0, 0x62};  // fd00::2 in netns_fixture.h
constexpr std::uint32_t kRing = 251;

Address addr(const char* text) {
  const auto a = Address::parse(text);
  REQUIRE(a);
  return *a;
}

Member member(const char* name, const char* address, bool self = false, std::uint32_t weight = 1) {
  return Member{name, node_id_for(name), addr(address), weight, self};
}

VipConfig vip(const char* address, std::uint8_t protocol, std::vector<std::uint16_t> ports,
              std::vector<std::string> nodes = {}) {
  return VipConfig{addr(address), protocol, std::move(ports), std::move(nodes)};
}

ProbeFlow flow(std::uint8_t protocol, const char* src, std::uint16_t sport, const char* dst,
               std::uint16_t dport) {
  return ProbeFlow{protocol, addr(src), sport, addr(dst), dport};
}

// A packet of the same flow (by default its first), built by the tests' own
// frame builder (not the daemon's), as the router would deliver it.
Bytes serving_frame(const ProbeFlow& f, std::uint8_t tcp_flags = test::kSyn) {
  Frame frame;
  frame.protocol = f.protocol;
  frame.tcp_flags = tcp_flags;
  frame.sport = f.sport;
  frame.dport = f.vport;
  if (f.vip.is_v6()) {
    frame.ethertype = 0x86dd;
    std::memcpy(frame.saddr6.data(), f.src.words.data(), 16);
    std::memcpy(frame.daddr6.data(), f.vip.words.data(), 16);
  } else {
    frame.saddr = f.src.words[0];
    frame.daddr = f.vip.words[0];
  }
  return frame.build();
}

mixlb_flow_key flow_key(const ProbeFlow& f) {
  mixlb_flow_key k{};
  std::memcpy(k.src, f.src.words.data(), sizeof(k.src));
  std::memcpy(k.dst, f.vip.words.data(), sizeof(k.dst));
  k.sport = htons(f.sport);
  k.dport = htons(f.vport);
  k.proto = f.protocol;
  k.family = static_cast<std::uint8_t>(f.vip.is_v6() ? MIXLB_AF_INET6 : MIXLB_AF_INET);
  return k;
}

// Everything a decision could count, read from the maps.
struct Snapshot {
  GlobalCounters global;
  std::vector<VipCounters> vips;
  std::vector<NodeCounters> cells;

  friend bool operator==(const Snapshot& a, const Snapshot& b) {
    auto same_vip = [](const VipCounters& x, const VipCounters& y) {
      return x.local_pkts == y.local_pkts && x.local_bytes == y.local_bytes &&
             x.fwd_pkts == y.fwd_pkts && x.fwd_bytes == y.fwd_bytes &&
             x.from_peer_pkts == y.from_peer_pkts && x.from_peer_bytes == y.from_peer_bytes &&
             x.drops == y.drops;
    };
    if (a.global.events != b.global.events || a.global.drops != b.global.drops ||
        a.global.fib_rets != b.global.fib_rets || a.vips.size() != b.vips.size() ||
        a.cells.size() != b.cells.size()) {
      return false;
    }
    for (std::size_t i = 0; i < a.vips.size(); ++i)
      if (!same_vip(a.vips[i], b.vips[i])) return false;
    for (std::size_t i = 0; i < a.cells.size(); ++i)
      if (a.cells[i].pkts != b.cells[i].pkts || a.cells[i].bytes != b.cells[i].bytes) return false;
    return true;
  }
};

// A serving program, a dry-run one sharing its maps, ClusterSync over
// `members`, and the oracle the daemon would use, all on dp0.
struct Cluster {
  std::unique_ptr<XdpProgram> serving;
  std::unique_ptr<XdpProgram> dry_run;
  std::unique_ptr<ClusterSync> sync;
  std::unique_ptr<FlowOracle> oracle;
  std::vector<Member> members;
  std::vector<VipEntry> vips;

  Cluster(std::vector<Member> m, const std::vector<VipConfig>& configs) : members(std::move(m)) {
    test_net();
    DatapathSettings s = small_test_settings(node_id_for("self"), kRing);
    serving = load_test_program(s);
    s.dry_run = true;
    s.share_maps_with = serving.get();
    dry_run = load_test_program(s);
    sync = std::make_unique<ClusterSync>(serving->maps(), s.max_vips);
    vips = expand_vips(configs);
    const auto applied = sync->apply(members, vips);
    REQUIRE_MESSAGE(applied.has_value(), (applied ? "" : applied.error().message()));
    oracle = std::make_unique<FlowOracle>(*dry_run, test_net().dp0, test_net().dp0_mac);
  }

  DatapathMaps& maps() { return serving->maps(); }

  json which(const ProbeFlow& f) { return oracle->which(f, members, vips, *sync); }

  XdpRunResult serve(const ProbeFlow& f, std::uint8_t tcp_flags = test::kSyn) {
    auto r = xdp_test_run(serving->prog_fd(), serving_frame(f, tcp_flags), test_net().dp0);
    REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().message()));
    return *r;
  }

  std::optional<mixlb_ct_value> conntrack(const ProbeFlow& f) {
    auto entry = maps().conntrack(flow_key(f));
    REQUIRE(entry.has_value());
    return *entry;
  }

  Snapshot snapshot() {
    Snapshot snap;
    auto global = maps().counters();
    REQUIRE(global.has_value());
    snap.global = *global;
    for (const VipEntry& v : vips) {
      const auto id = sync->vip_id(v.key);
      REQUIRE(id);
      auto c = maps().vip_counters(*id);
      REQUIRE(c.has_value());
      snap.vips.push_back(*c);
      for (const Member& m : members) {
        const auto slot = sync->stats_slot(m.id);
        REQUIRE(slot);
        auto cell = maps().node_counters(*id, *slot);
        REQUIRE(cell.has_value());
        snap.cells.push_back(*cell);
      }
    }
    return snap;
  }
};

test::Mac dst_mac_of(const Bytes& frame) {
  test::Mac mac{};
  std::memcpy(mac.data(), frame.data(), 6);
  return mac;
}

// The checksum of a whole header or segment, its checksum field included:
// 0 when the field is right.
std::uint16_t residue(std::uint32_t sum, const std::uint8_t* data, std::size_t size) {
  return test::csum_fold(test::csum_add(sum, data, size));
}

std::string which_error(const json& args) {
  try {
    parse_which_args(args);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_SUITE("which") {
  TEST_CASE("which arguments are checked one by one") {
    const json good = {{"proto", "tcp"},
                       {"src", "192.0.2.1"},
                       {"sport", 40000},
                       {"vip", "10.100.0.1"},
                       {"vport", 80}};
    const ProbeFlow f = parse_which_args(good);
    CHECK(f.protocol == 6);
    CHECK(f.src == addr("192.0.2.1"));
    CHECK(f.sport == 40000);
    CHECK(f.vip == addr("10.100.0.1"));
    CHECK(f.vport == 80);
    json udp6 = good;
    udp6["proto"] = "udp";
    udp6["src"] = "2001:db8::1";
    udp6["vip"] = "fd00:100::1";
    udp6["vport"] = 65535;
    udp6["sport"] = 1;
    const ProbeFlow g = parse_which_args(udp6);
    CHECK(g.protocol == 17);
    CHECK(g.vip.is_v6());
    CHECK(g.sport == 1);
    CHECK(g.vport == 65535);

    struct Case {
      const char* key;
      json value;  // null: remove the key
      const char* message;
    };
    const Case cases[] = {
        {"proto", nullptr, "which: missing \"proto\" (tcp or udp)"},
        {"proto", "sctp", "which: proto: expected \"tcp\" or \"udp\", got \"sctp\""},
        {"proto", 6, "which: proto: expected \"tcp\" or \"udp\", got 6"},
        {"src", nullptr, "which: missing \"src\" (an IPv4 or IPv6 address)"},
        {"src", "192.0.2", "which: src: expected an IPv4 or IPv6 address, got \"192.0.2\""},
        {"src", 3221225985, "which: src: expected an IPv4 or IPv6 address, got 3221225985"},
        {"sport", nullptr, "which: missing \"sport\" (a port number 1..65535)"},
        {"sport", 0, "which: sport: expected a port number 1..65535, got 0"},
        {"sport", 65536, "which: sport: expected a port number 1..65535, got 65536"},
        {"sport", -1, "which: sport: expected a port number 1..65535, got -1"},
        {"sport", "http", "which: sport: expected a port number 1..65535, got \"http\""},
        {"sport", 80.5, "which: sport: expected a port number 1..65535, got 80.5"},
        {"vip", "vip.example", "which: vip: expected an IPv4 or IPv6 address, got \"vip.example\""},
        {"vip", "fd00:100::1",
         "which: src 192.0.2.1 is IPv4 but vip fd00:100::1 is IPv6; a flow has one family"},
        {"vport", nullptr, "which: missing \"vport\" (a port number 1..65535)"},
        {"vport", 70000, "which: vport: expected a port number 1..65535, got 70000"},
        {"dport", 80,
         "which: unknown argument \"dport\" (which takes proto, src, sport, vip, vport)"},
    };
    for (const Case& c : cases) {
      const std::string expected = c.message;
      CAPTURE(expected);
      json args = good;
      if (c.value.is_null()) {
        args.erase(c.key);
      } else {
        args[c.key] = c.value;
      }
      CHECK(which_error(args) == expected);
    }
  }

  TEST_CASE("probe frames carry the flow with valid checksums") {
    const MacAddress src{0x02, 0, 0, 0, 0, 0x01};
    const MacAddress dst{0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
    for (const ProbeFlow& f : {flow(6, "192.0.2.1", 40000, "10.100.0.1", 80),
                               flow(17, "192.0.2.1", 5353, "10.100.0.1", 53),
                               flow(6, "2001:db8::1", 40001, "fd00:100::1", 443),
                               flow(17, "2001:db8::1", 40002, "fd00:100::1", 4789)}) {
      const bool v6 = f.vip.is_v6();
      const bool tcp = f.protocol == 6;
      CAPTURE(v6);
      CAPTURE(tcp);
      const auto frame = probe_frame(f, src, dst);
      const std::size_t l3 = v6 ? 40 : 20, l4 = tcp ? 20 : 8;
      REQUIRE(frame.size() == 14 + l3 + l4);
      CHECK(std::memcmp(&frame[0], dst.data(), 6) == 0);
      CHECK(std::memcmp(&frame[6], src.data(), 6) == 0);
      CHECK(frame[12] == (v6 ? 0x86 : 0x08));
      CHECK(frame[13] == (v6 ? 0xdd : 0x00));
      const std::uint8_t* ip = &frame[14];
      const std::uint8_t* seg = ip + l3;
      std::uint32_t pseudo = 0;
      if (v6) {
        CHECK(ip[0] == 0x60);
        CHECK(((ip[4] << 8) | ip[5]) == l4);
        CHECK(ip[6] == f.protocol);
        CHECK(std::memcmp(ip + 8, f.src.words.data(), 16) == 0);
        CHECK(std::memcmp(ip + 24, f.vip.words.data(), 16) == 0);
        pseudo = test::csum_add(test::csum_add(0, ip + 8, 16), ip + 24, 16);
      } else {
        CHECK(ip[0] == 0x45);
        CHECK(((ip[2] << 8) | ip[3]) == l3 + l4);
        CHECK((ip[6] & 0x3f) == 0);  // no fragment offset, no MF
        CHECK(ip[9] == f.protocol);
        CHECK(std::memcmp(ip + 12, f.src.words.data(), 4) == 0);
        CHECK(std::memcmp(ip + 16, f.vip.words.data(), 4) == 0);
        CHECK(residue(0, ip, l3) == 0);
        pseudo = test::csum_add(0, ip + 12, 8);
      }
      pseudo += f.protocol + static_cast<std::uint32_t>(l4);
      CHECK(((seg[0] << 8) | seg[1]) == f.sport);
      CHECK(((seg[2] << 8) | seg[3]) == f.vport);
      CHECK(residue(pseudo, seg, l4) == 0);
      if (tcp) {
        CHECK(seg[13] == test::kAck);  // a packet of the flow, which its entry would answer
        CHECK((seg[12] >> 4) == 5);
      } else {
        CHECK(((seg[4] << 8) | seg[5]) == l4);
        CHECK(((seg[6] << 8) | seg[7]) != 0);  // a UDP checksum is always sent
      }
    }
  }
}

TEST_SUITE("which" * doctest::skip(cannot_run())) {
  TEST_CASE("the dry run names the node the serving program picks, and changes no map") {
    Cluster c(
        {member("self", "10.0.0.1", true), member("peer", "10.0.0.2")},
        {vip("10.100.0.1", 6, {80}), vip("fd00:100::1", 6, {443}), vip("10.100.0.1", 17, {})});
    std::map<std::string, int> picked;
    for (int i = 0; i < 50; ++i) {
      CAPTURE(i);
      const std::string v4_src = "192.0.2." + std::to_string(i + 1);
      const std::string v6_src = "2001:db8::" + std::to_string(i + 1);
      const auto sport = static_cast<std::uint16_t>(32768 + i * 97);
      const ProbeFlow f = i % 3 == 0   ? flow(6, v4_src.c_str(), sport, "10.100.0.1", 80)
                          : i % 3 == 1 ? flow(6, v6_src.c_str(), sport, "fd00:100::1", 443)
                                       : flow(17, v4_src.c_str(), sport, "10.100.0.1",
                                              static_cast<std::uint16_t>(5000 + i));
      const Snapshot before = c.snapshot();
      const json answer = c.which(f);
      CAPTURE(answer.dump());

      // The dry run changed nothing: no connection entry, no counter.
      CHECK_FALSE(c.conntrack(f).has_value());
      CHECK(c.snapshot() == before);

      REQUIRE(answer["node"].is_string());
      const std::string node = answer["node"];
      CHECK(answer["from_conntrack"] == false);
      CHECK(answer["vip"] == (i % 3 == 0   ? "10.100.0.1:80/tcp"
                              : i % 3 == 1 ? "[fd00:100::1]:443/tcp"
                                           : "10.100.0.1:*/udp"));
      CHECK(answer["node_id"] == node_id_for(node));
      ++picked[node];

      // The serving program does what the answer says.
      const XdpRunResult served = c.serve(f);
      if (node == "self") {
        CHECK(answer["verdict"] == "pass");
        CHECK(answer["self"] == true);
        CHECK(served.verdict == XDP_PASS);
      } else {
        CHECK(node == "peer");
        CHECK(answer["verdict"] == "tx");
        CHECK(answer["self"] == false);
        CHECK(served.verdict == XDP_TX);
        CHECK(dst_mac_of(served.packet) == kPeerMac);
      }
      // The flow's second packet (the handshake's ACK) pins it.
      c.serve(f, test::kAck);
      const auto entry = c.conntrack(f);
      REQUIRE(entry.has_value());
      CHECK(entry->node_id == node_id_for(node));

      // Asked again, the answer comes from the connection table.
      const json again = c.which(f);
      CHECK(again["node"] == node);
      CHECK(again["from_conntrack"] == true);
    }
    // Both nodes were chosen, so agreement was tested both ways.
    CHECK(picked["self"] >= 10);
    CHECK(picked["peer"] >= 10);
  }

  TEST_CASE("the connection table outranks Maglev in the answer, as in the data path") {
    Cluster c({member("self", "10.0.0.1", true), member("peer", "10.0.0.2")},
              {vip("10.100.0.1", 6, {80})});
    // Find a flow Maglev gives to this node, then pin it to the peer.
    std::optional<ProbeFlow> local;
    for (std::uint16_t sport = 40000; sport < 40100 && !local; ++sport) {
      const ProbeFlow f = flow(6, "192.0.2.77", sport, "10.100.0.1", 80);
      if (c.which(f)["node"] == "self") local = f;
    }
    REQUIRE(local);
    mixlb_ct_value pinned{};
    pinned.node_id = node_id_for("peer");
    pinned.flags = MIXLB_CT_SEEN_SYN;
    REQUIRE(c.maps().conntrack_insert(flow_key(*local), pinned).has_value());
    const json answer = c.which(*local);
    CHECK(answer["node"] == "peer");
    CHECK(answer["from_conntrack"] == true);
    CHECK(answer["verdict"] == "tx");
    // The flow's packets go where the answer says; a new connection on the
    // same 5-tuple (a SYN) would follow the table instead.
    const XdpRunResult served = c.serve(*local, test::kAck);
    CHECK(served.verdict == XDP_TX);
    CHECK(dst_mac_of(served.packet) == kPeerMac);
    CHECK(c.serve(*local, test::kSyn).verdict == XDP_PASS);
  }

  TEST_CASE("a peer known by an IPv6 address: the answer follows the IPv6 route") {
    Cluster c({member("self", "10.0.0.1", true), member("peer6", "fd00::2")},
              {vip("10.100.0.1", 17, {53})});
    int forwarded = 0;
    for (std::uint16_t i = 0; i < 20; ++i) {
      const ProbeFlow f =
          flow(17, "192.0.2.9", static_cast<std::uint16_t>(1024 + i * 31), "10.100.0.1", 53);
      const json answer = c.which(f);
      const XdpRunResult served = c.serve(f);
      if (answer["node"] == "peer6") {
        ++forwarded;
        CHECK(answer["verdict"] == "tx");
        CHECK(served.verdict == XDP_TX);
        CHECK(dst_mac_of(served.packet) == kPeer6Mac);
      } else {
        CHECK(answer["node"] == "self");
        CHECK(served.verdict == XDP_PASS);
      }
    }
    CHECK(forwarded > 0);
  }

  TEST_CASE("drops, drained nodes, serving sets and addresses that are not VIPs") {
    // ghost (10.0.0.3) has no neighbour entry: forwarding to it is a drop.
    Cluster c({member("self", "10.0.0.1", true), member("peer", "10.0.0.2", false, 0),
               member("ghost", "10.0.0.3")},
              {vip("10.100.0.1", 6, {80}, {"ghost"}), vip("10.100.0.2", 6, {80}),
               vip("10.100.0.3", 6, {80}, {"peer"})});
    const ProbeFlow to_ghost = flow(6, "192.0.2.1", 40000, "10.100.0.1", 80);
    const Snapshot before = c.snapshot();
    const json dropped = c.which(to_ghost);
    CHECK(c.snapshot() == before);
    CHECK(dropped["node"] == "ghost");
    CHECK(dropped["verdict"] == "drop");
    CHECK(dropped["drop_reason"] == "fib_no_neigh");
    CHECK(c.serve(to_ghost).verdict == XDP_DROP);

    // peer has weight 0: every new flow of a VIP served by all goes elsewhere.
    for (std::uint16_t sport = 41000; sport < 41040; ++sport) {
      const json answer = c.which(flow(6, "192.0.2.2", sport, "10.100.0.2", 80));
      CHECK(answer["node"] != "peer");
      CHECK((answer["verdict"] != "drop" || answer["node"] == "ghost"));
    }

    // A VIP served only by a drained node has an empty table.
    const ProbeFlow to_drained = flow(6, "192.0.2.3", 40000, "10.100.0.3", 80);
    const json empty = c.which(to_drained);
    CHECK(empty["node"].is_null());
    CHECK(empty["verdict"] == "drop");
    CHECK(empty["drop_reason"] == "no_backend");
    CHECK(c.serve(to_drained).verdict == XDP_DROP);

    // Not a VIP (address, port or protocol): passed untouched, no node.
    for (const ProbeFlow& f : {flow(6, "192.0.2.1", 40000, "10.100.0.9", 80),
                               flow(6, "192.0.2.1", 40000, "10.100.0.2", 81),
                               flow(17, "192.0.2.1", 40000, "10.100.0.2", 80)}) {
      const json answer = c.which(f);
      CHECK(answer["vip"].is_null());
      CHECK(answer["node"].is_null());
      CHECK(answer["verdict"] == "pass");
      const Bytes frame = serving_frame(f);
      const XdpRunResult served = c.serve(f);
      CHECK(served.verdict == XDP_PASS);
      CHECK(served.packet == frame);
    }
  }

  TEST_CASE("the probe's source MAC is never a peer's") {
    Cluster c({member("self", "10.0.0.1", true), member("peer", "10.0.0.2")},
              {vip("10.100.0.1", 6, {80})});
    auto first = probe_source_mac(c.maps());
    REQUIRE(first.has_value());
    CHECK(*first == MacAddress{0x02, 0, 0, 0, 0, 0x01});
    // A peer that happens to use that MAC: its frames are delivered locally
    // unbalanced, so the probe must take another one.
    mixlb_mac taken{};
    std::memcpy(taken.addr, first->data(), 6);
    REQUIRE(c.maps().set_peer_mac(taken, node_id_for("peer")).has_value());
    auto second = probe_source_mac(c.maps());
    REQUIRE(second.has_value());
    CHECK(*second == MacAddress{0x02, 0, 0, 0, 0, 0x02});
    // And the answers still come from Maglev, not from the peer shortcut:
    // some flow of the VIP goes to the peer.
    bool forwarded = false;
    for (std::uint16_t sport = 40000; sport < 40064 && !forwarded; ++sport) {
      const json answer = c.which(flow(6, "192.0.2.5", sport, "10.100.0.1", 80));
      forwarded = answer["node"] == "peer" && answer["verdict"] == "tx";
    }
    CHECK(forwarded);
  }
}

}  // namespace mixlb
