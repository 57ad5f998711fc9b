// bpf/xdp_switch.bpf.c, the XDP switch of the e2e benchmark's topology, run
// through BPF_PROG_TEST_RUN: which frames it takes from the bridge and which
// it leaves there. Without the redirects the benchmark measures the bridge;
// with a wrong one a frame goes to the wrong node or back where it came from.
#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <cstring>

#include <doctest/doctest.h>

#include "kernel/bpf_test_run.h"
#include "netns_fixture.h"
#include "packet.h"
#include "xdp_switch.skel.h"

namespace mixlb {
namespace {

using test::Bytes;
using test::Frame;
using test::Mac;

constexpr int kLo = 1;  // the port a frame comes in on: loopback exists everywhere

struct Switch {
  xdp_switch* skel = xdp_switch__open_and_load();
  Switch() { REQUIRE(skel != nullptr); }
  ~Switch() { xdp_switch__destroy(skel); }
  Switch(const Switch&) = delete;
  Switch& operator=(const Switch&) = delete;

  void port(const Mac& mac, std::uint32_t ifindex) {
    std::uint64_t key = 0;
    std::memcpy(&key, mac.data(), 6);
    REQUIRE(bpf_map_update_elem(bpf_map__fd(skel->maps.switch_fdb), &key, &ifindex, BPF_ANY) == 0);
  }

  // The verdict for a frame to `dst`; the frame must come out unchanged.
  std::uint32_t run(const Mac& dst) {
    Frame f;
    f.dst_mac = dst;
    const Bytes in = f.build();
    auto r = xdp_test_run(bpf_program__fd(skel->progs.xdp_switch), in, kLo);
    REQUIRE(r.has_value());
    CHECK(r->packet == in);
    return r->verdict;
  }
};

const Mac kNode1{0x02, 0x10, 0, 0, 0, 0x11};
const Mac kNode2{0x02, 0x10, 0, 0, 0, 0x12};

}  // namespace

TEST_SUITE("datapath" * doctest::skip(cannot_run())) {

TEST_CASE("the XDP switch redirects a frame to a known MAC and leaves unknown ones to the bridge") {
  Switch sw;
  sw.port(kNode1, 7);
  CHECK(sw.run(kNode1) == XDP_REDIRECT);
  CHECK(sw.run(kNode2) == XDP_PASS);
  sw.port(kNode2, 8);
  CHECK(sw.run(kNode2) == XDP_REDIRECT);
}

TEST_CASE("the XDP switch leaves broadcast and multicast to the bridge, even when in its table") {
  Switch sw;
  const Mac broadcast{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  const Mac v6_all_nodes{0x33, 0x33, 0, 0, 0, 0x01};
  const Mac v4_group{0x01, 0x00, 0x5e, 0, 0, 0x58};  // 224.0.0.88, multicast invalidation
  for (const Mac& m : {broadcast, v6_all_nodes, v4_group}) {
    sw.port(m, 7);
    CHECK(sw.run(m) == XDP_PASS);
  }
}

TEST_CASE("the XDP switch never sends a frame back out of the port it came in on") {
  Switch sw;
  sw.port(kNode1, kLo);
  CHECK(sw.run(kNode1) == XDP_PASS);
}

}  // TEST_SUITE
}  // namespace mixlb
