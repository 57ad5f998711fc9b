#pragma once
// The datapath tests' cluster: a loaded program (the real object) whose node
// map holds this node, peers reachable through dp0 (IPv4 and IPv6), a peer
// behind dp1 (redirect) and one without a neighbour entry; plus helpers to
// publish tables and run frames. Built on the namespace in netns_fixture.h.
#include <arpa/inet.h>
#include <sched.h>

#include <cstring>
#include <memory>
#include <vector>

#include <doctest/doctest.h>

#include "cluster/node_id.h"
#include "kernel/bpf_test_run.h"
#include "kernel/datapath.h"
#include "netns_fixture.h"
#include "packet.h"

namespace mixlb {


using test::Bytes;
using test::Frame;
using test::ip4;
using test::Mac;

inline const Mac kPeerMac{0x02, 0xaa, 0, 0, 0, 0x02};
inline const Mac kPeer6Mac{0x02, 0xaa, 0, 0, 0, 0x62};
inline const Mac kFarMac{0x02, 0xaa, 0, 0, 5, 0x02};
inline const Mac kRouterMac{0x02, 0, 0, 0, 0, 0xfe};

inline const std::uint32_t kSelf = node_id_for("self");
inline const std::uint32_t kPeer = node_id_for("peer");
inline const std::uint32_t kFar = node_id_for("far");
inline const std::uint32_t kGhost = node_id_for("ghost");
inline const std::uint32_t kPeer6 = node_id_for("peer6");    // known by an IPv6 address
inline const std::uint32_t kGhost6 = node_id_for("ghost6");  // IPv6, no neighbour
inline const std::uint32_t kUnknown = node_id_for("not-in-node-map");

// Stats slots the fixture gives its nodes (this node is always slot 0).
inline constexpr std::uint32_t kPeerSlot = 1, kFarSlot = 2, kGhostSlot = 3, kPeer6Slot = 4,
                               kGhost6Slot = 5;
constexpr std::uint32_t kRing = 251;

// A VIP key for an IPv4 or IPv6 address text (port 0: every port).
inline mixlb_vip_key vip_key(const char* addr, std::uint16_t port, std::uint8_t proto = 6) {
  mixlb_vip_key k{};
  if (std::strchr(addr, ':')) {
    const auto a = test::ip6(addr);
    std::memcpy(k.addr, a.data(), 16);
    k.family = MIXLB_AF_INET6;
  } else {
    k.addr[0] = ip4(addr);
    k.family = MIXLB_AF_INET;
  }
  k.port = htons(port);
  k.proto = proto;
  return k;
}

using test::flow_of;

// One loaded program with the test cluster: self, peer, far, ghost.
struct Lb {
  std::unique_ptr<XdpProgram> prog;

  explicit Lb(std::uint32_t ring = kRing) {
    test_net();
    prog = load_test_program(small_test_settings(kSelf, ring));
    node(kSelf, "10.0.0.1", MIXLB_SELF_STATS_SLOT);
    node(kPeer, "10.0.0.2", kPeerSlot);
    node(kFar, "10.0.5.2", kFarSlot);
    node(kGhost, "10.0.0.3", kGhostSlot);
    node(kPeer6, "fd00::2", kPeer6Slot);
    node(kGhost6, "fd00::3", kGhost6Slot);
  }

  DatapathMaps& maps() { return prog->maps(); }

  void node(std::uint32_t id, const char* addr, std::uint32_t slot) {
    const auto key = vip_key(addr, 0);  // reuses the address parsing
    mixlb_node n{};
    std::memcpy(n.addr, key.addr, sizeof(n.addr));
    n.family = key.family;
    n.stats_slot = slot;
    REQUIRE(maps().set_node(id, n).has_value());
  }

  // Publishes a table where every slot holds `id`.
  std::uint32_t vip_all(const char* addr, std::uint16_t port, std::uint32_t id, std::uint32_t vip_id = 0,
                        std::uint8_t proto = 6) {
    std::vector<std::uint32_t> table(maps().ring_size(), id);
    auto half = maps().publish_vip(vip_key(addr, port, proto), vip_id, table);
    REQUIRE(half.has_value());
    return *half;
  }

  // Makes `mac` the MAC of peer `id`, as the sidecar does for a member.
  mixlb_mac peer_mac(const Mac& mac, std::uint32_t id) {
    mixlb_mac m{};
    std::memcpy(m.addr, mac.data(), sizeof(m.addr));
    REQUIRE(maps().set_peer_mac(m, id).has_value());
    return m;
  }

  XdpRunResult run(const Bytes& frame, int ifindex = -1) {
    auto r = xdp_test_run(prog->prog_fd(), frame, ifindex < 0 ? test_net().dp0 : ifindex);
    REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().message()));
    return *r;
  }

  VipCounters counters(std::uint32_t vip_id = 0) {
    auto c = maps().vip_counters(vip_id);
    REQUIRE(c.has_value());
    return *c;
  }
};

// Runs the calling thread on one CPU while it lives. The program's caches
// are per CPU: a test that must meet its own copy cannot migrate between
// two runs.
struct OneCpu {
  cpu_set_t all{};
  OneCpu() {
    REQUIRE(sched_getaffinity(0, sizeof(all), &all) == 0);
    cpu_set_t one;
    CPU_ZERO(&one);
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
      if (CPU_ISSET(cpu, &all)) {
        CPU_SET(cpu, &one);
        break;
      }
    REQUIRE(sched_setaffinity(0, sizeof(one), &one) == 0);
  }
  ~OneCpu() { sched_setaffinity(0, sizeof(all), &all); }
  OneCpu(const OneCpu&) = delete;
  OneCpu& operator=(const OneCpu&) = delete;
};

inline Frame syn_to_vip() {
  Frame f;
  f.daddr = ip4("10.100.0.1");
  f.dport = 80;
  f.tcp_flags = test::kSyn;
  return f;
}

inline void check_untouched(Lb& lb, const Bytes& frame) {
  auto r = lb.run(frame);
  CHECK(r.verdict == XDP_PASS);
  CHECK(r.packet == frame);
}


}  // namespace mixlb
