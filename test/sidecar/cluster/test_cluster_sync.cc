// ClusterSync and the XdpProgram lifecycle against real maps: stable VIP ids,
// tables that follow the member set, stale VIPs and nodes removed, pinned maps
// adopted by a restarted sidecar, and a pinned link that survives it.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>

#include <doctest/doctest.h>

#include "cluster/cluster_sync.h"
#include "kernel/bpffs.h"
#include "cluster/node_id.h"
#include "kernel/datapath.h"
#include "netns_fixture.h"
#include "pin_dir.h"
#include "settings.h"

namespace mixlb {
namespace {

constexpr std::uint32_t kRing = 13;

Member member(const char* name, const char* addr) {
  return Member{name, node_id_for(name), *Address::parse(addr), 1};
}

// A TCP flow from `src` (one word, network order) to a VIP port.
mixlb_flow_key flow_to(const VipEntry& vip, std::uint32_t src) {
  mixlb_flow_key flow{};
  flow.src[0] = src;
  flow.dst[0] = vip.key.addr[0];
  flow.dport = vip.key.port;
  flow.proto = 6;
  flow.family = MIXLB_AF_INET;
  return flow;
}

VipConfig vip(const char* addr, std::vector<std::uint16_t> ports) {
  VipConfig v;
  v.address = *Address::parse(addr);
  v.protocol = 6;
  v.ports = std::move(ports);
  return v;
}

std::unique_ptr<XdpProgram> load(const std::string& pin_dir = "") {
  DatapathSettings s = small_test_settings(node_id_for("a"), kRing);
  s.pin_dir = pin_dir;
  return load_test_program(s);
}

using test::PinDir;

}  // namespace

TEST_SUITE("cluster-sync" * doctest::skip(cannot_run())) {

TEST_CASE("VIP entries expand per port and print as address:port/proto") {
  const std::vector<VipConfig> vips{vip("10.100.0.1", {80, 443}), vip("10.100.0.2", {53})};
  const auto entries = expand_vips(vips);
  REQUIRE(entries.size() == 3);
  CHECK(entries[0].label == "10.100.0.1:80/tcp");
  CHECK(entries[1].label == "10.100.0.1:443/tcp");
  CHECK(entries[2].label == "10.100.0.2:53/tcp");
  CHECK(ntohs(entries[1].key.port) == 443);
}

TEST_CASE("apply publishes every VIP with a table of the members and fills the node map") {
  auto prog = load();
  ClusterSync sync(prog->maps(), 4);
  const std::vector<Member> members{member("a", "10.0.0.1"), member("b", "10.0.0.2"), member("c", "10.0.0.3")};
  const auto vips = expand_vips(std::vector<VipConfig>{vip("10.100.0.1", {80, 443})});
  REQUIRE(sync.apply(members, vips).has_value());
  CHECK(sync.publications() == 2);
  auto ids = prog->maps().node_ids();
  REQUIRE(ids.has_value());
  CHECK(ids->size() == 3);
  for (const auto& v : vips) {
    auto table = prog->maps().live_table(v.key);
    REQUIRE(table.has_value());
    for (const auto& m : members) CHECK(std::count(table->begin(), table->end(), m.id) > 0);
  }
  CHECK(sync.vip_id(vips[0].key) != sync.vip_id(vips[1].key));

  // The same input publishes nothing new.
  REQUIRE(sync.apply(members, vips).has_value());
  CHECK(sync.publications() == 2);
}

TEST_CASE("a member that leaves disappears from every table, then from the node map with its connections") {
  auto prog = load();
  ClusterSync sync(prog->maps(), 4);
  std::vector<Member> members{member("a", "10.0.0.1"), member("b", "10.0.0.2"), member("c", "10.0.0.3")};
  const auto vips = expand_vips(std::vector<VipConfig>{vip("10.100.0.1", {80})});
  REQUIRE(sync.apply(members, vips).has_value());
  const auto before = *prog->maps().live_table(vips[0].key);
  const std::uint32_t gone = members.back().id;
  // One connection pinned to the leaving node, one to a staying one.
  auto flow_from = [&](std::uint32_t src) { return flow_to(vips[0], src); };
  const auto vip_id = static_cast<std::uint16_t>(*sync.vip_id(vips[0].key));
  REQUIRE(prog->maps().conntrack_insert(flow_from(1), {.last_seen_ns = 1, .node_id = gone, .vip_id = vip_id}));
  REQUIRE(prog->maps().conntrack_insert(flow_from(2), {.last_seen_ns = 1, .node_id = members[0].id, .vip_id = vip_id}));
  members.pop_back();
  REQUIRE(sync.apply(members, vips).has_value());
  CHECK_FALSE(prog->maps().conntrack(flow_from(1))->has_value());
  CHECK(prog->maps().conntrack(flow_from(2))->has_value());
  const auto after = *prog->maps().live_table(vips[0].key);
  CHECK(std::count(after.begin(), after.end(), gone) == 0);
  for (std::size_t i = 0; i < after.size(); ++i)
    if (before[i] != gone) CHECK(after[i] == before[i]);
  auto ids = prog->maps().node_ids();
  REQUIRE(ids.has_value());
  CHECK(std::find(ids->begin(), ids->end(), gone) == ids->end());
}

TEST_CASE("a removed VIP is deleted with its connections, and its id is reused with zeroed counters") {
  auto prog = load();
  ClusterSync sync(prog->maps(), 4);
  const std::vector<Member> members{member("a", "10.0.0.1")};
  auto both = expand_vips(std::vector<VipConfig>{vip("10.100.0.1", {80}), vip("10.100.0.2", {80})});
  REQUIRE(sync.apply(members, both).has_value());
  const auto old_id = *sync.vip_id(both[1].key);
  const mixlb_flow_key flow = flow_to(both[1], 0x01020304);
  const mixlb_ct_value entry{.last_seen_ns = 1, .node_id = members[0].id,
                             .vip_id = static_cast<std::uint16_t>(old_id)};
  REQUIRE(prog->maps().conntrack_insert(flow, entry).has_value());
  const std::vector<VipEntry> first_only{both[0]};
  REQUIRE(sync.apply(members, first_only).has_value());
  auto gone = prog->maps().vip(both[1].key);
  REQUIRE(gone.has_value());
  CHECK_FALSE(gone->has_value());
  CHECK_FALSE(sync.vip_id(both[1].key).has_value());
  // Its connections went with it: the table would keep balancing them.
  auto ct = prog->maps().conntrack(flow);
  REQUIRE(ct.has_value());
  CHECK_FALSE(ct->has_value());

  const auto third = expand_vips(std::vector<VipConfig>{vip("10.100.0.3", {80})});
  std::vector<VipEntry> next{both[0], third[0]};
  REQUIRE(sync.apply(members, next).has_value());
  CHECK(sync.vip_id(third[0].key) == old_id);
  auto counters = prog->maps().vip_counters(old_id);
  REQUIRE(counters.has_value());
  CHECK(counters->local_pkts == 0);
}

TEST_CASE("more VIPs than max_vips is an error, not a silent drop") {
  auto prog = load();
  ClusterSync sync(prog->maps(), 4);
  const std::vector<Member> members{member("a", "10.0.0.1")};
  const auto vips = expand_vips(std::vector<VipConfig>{vip("10.100.0.1", {1, 2, 3, 4, 5})});
  auto r = sync.apply(members, vips);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().message().find("VIP id") != std::string::npos);
}

TEST_CASE("a restarted sidecar adopts pinned maps: VIP ids and connections survive") {
  PinDir pins;
  const std::vector<Member> members{member("a", "10.0.0.1"), member("b", "10.0.0.2")};
  const auto vips = expand_vips(std::vector<VipConfig>{vip("10.100.0.1", {80}), vip("10.100.0.2", {80})});
  const mixlb_flow_key flow = flow_to(vips[1], 0x01020304);
  std::uint32_t id_before = 0;
  {
    auto first = load(pins.path);
    CHECK_FALSE(first->adopted_maps());
    ClusterSync sync(first->maps(), 4);
    REQUIRE(sync.apply(members, vips).has_value());
    id_before = *sync.vip_id(vips[1].key);
    const mixlb_ct_value entry{.last_seen_ns = 1, .node_id = members[1].id, .vip_id = static_cast<std::uint16_t>(id_before)};
    REQUIRE(first->maps().conntrack_insert(flow, entry).has_value());
  }
  CHECK(std::filesystem::exists(pins.path + "/mixlb_ct"));
  auto second = load(pins.path);
  CHECK(second->adopted_maps());
  // Configuration order changed: ids must follow the pinned state, not the order.
  const std::vector<VipEntry> reversed{vips[1], vips[0]};
  ClusterSync sync(second->maps(), 4);
  REQUIRE(sync.apply(members, reversed).has_value());
  CHECK(sync.vip_id(vips[1].key) == id_before);
  auto ct = second->maps().conntrack(flow);
  REQUIRE(ct.has_value());
  REQUIRE(ct->has_value());
  CHECK((*ct)->node_id == members[1].id);
  second->unpin();
  CHECK_FALSE(std::filesystem::exists(pins.path));
}

TEST_CASE("attach pins a link that a restarted sidecar swaps its program into; detach removes it") {
  PinDir pins;
  const int ifindex = test_net().dp0;
  {
    auto first = load(pins.path);
    auto mode = first->attach(ifindex, XdpMode::kNative);
    REQUIRE_MESSAGE(mode.has_value(), (mode ? "" : mode.error().message()));
    CHECK(*mode == AttachMode::kNative);
    CHECK(query_xdp_mode(ifindex) == AttachMode::kNative);
  }
  // The first owner is gone (as after a crash): the pinned link keeps XDP on.
  CHECK(query_xdp_mode(ifindex) == AttachMode::kNative);
  auto second = load(pins.path);
  auto mode = second->attach(ifindex, XdpMode::kAuto);
  REQUIRE(mode.has_value());
  CHECK(*mode == AttachMode::kNative);
  second->detach();
  CHECK(xdp_detached_soon(ifindex));
  CHECK_FALSE(std::filesystem::exists(pins.path + "/xdp_link"));
  second->unpin();
}

TEST_CASE("generic mode is attached when asked for and reported as such") {
  auto prog = load();
  const int ifindex = test_net().dp1;
  auto mode = prog->attach(ifindex, XdpMode::kGeneric);
  REQUIRE(mode.has_value());
  CHECK(*mode == AttachMode::kGeneric);
  CHECK(query_xdp_mode(ifindex) == AttachMode::kGeneric);
  prog->detach();
  CHECK(xdp_detached_soon(ifindex));
}

TEST_CASE("a departed member stays in the node map with its connections, in no table, until it goes") {
  auto prog = load();
  ClusterSync sync(prog->maps(), 4);
  std::vector<Member> members{member("a", "10.0.0.1"), member("b", "10.0.0.2"), member("c", "10.0.0.3")};
  const auto vips = expand_vips(std::vector<VipConfig>{vip("10.100.0.1", {80})});
  REQUIRE(sync.apply(members, vips).has_value());
  const std::uint32_t c = members[2].id;
  REQUIRE(sync.set_peer_mac(c, MacAddress{0x02, 0, 0, 0, 0, 0x13}));
  const mixlb_flow_key flow = flow_to(vips[0], 0x01020304);
  const auto vip_id = static_cast<std::uint16_t>(*sync.vip_id(vips[0].key));
  REQUIRE(prog->maps().conntrack_insert(flow, {.last_seen_ns = 1, .node_id = c, .vip_id = vip_id}));

  // c dies: gone for new flows, kept for its established ones.
  members[2].departed = true;
  members[2].weight = 0;
  REQUIRE(sync.apply(members, vips).has_value());
  const auto table = *prog->maps().live_table(vips[0].key);
  CHECK(std::count(table.begin(), table.end(), c) == 0);
  CHECK(sync.backends(vips[0].key) == std::vector<std::string>{"a", "b"});
  CHECK((*prog->maps().node(c)).has_value());
  CHECK((*prog->maps().conntrack(flow)).has_value());
  CHECK(sync.peer_mac(c).has_value());
  CHECK(prog->maps().peer_macs()->size() == 1);

  // Its grace ran out: the node, its connections and its MAC go.
  members.pop_back();
  REQUIRE(sync.apply(members, vips).has_value());
  CHECK_FALSE((*prog->maps().node(c)).has_value());
  CHECK_FALSE((*prog->maps().conntrack(flow)).has_value());
  CHECK_FALSE(sync.peer_mac(c).has_value());
  CHECK(prog->maps().peer_macs()->empty());
}

TEST_CASE("peer MACs go through ClusterSync: one per node, replaced, and kept across a restart") {
  PinDir pins;
  const std::vector<Member> members{member("a", "10.0.0.1"), member("b", "10.0.0.2")};
  const auto vips = expand_vips(std::vector<VipConfig>{vip("10.100.0.1", {80})});
  const MacAddress old_mac{0x02, 0, 0, 0, 0, 0x12}, new_mac{0x02, 0, 0, 0, 0, 0x22};
  {
    auto first = load(pins.path);
    ClusterSync sync(first->maps(), 4);
    REQUIRE(sync.apply(members, vips));
    REQUIRE(sync.set_peer_mac(members[1].id, old_mac));
    REQUIRE(sync.set_peer_mac(members[1].id, new_mac));
    auto macs = first->maps().peer_macs();
    REQUIRE(macs->size() == 1);
    CHECK((*macs)[0].first.addr[5] == 0x22);
    CHECK((*macs)[0].second == members[1].id);
  }
  // A successor knows the MAC before it has resolved anything itself, and
  // an apply before that keeps it.
  auto second = load(pins.path);
  ClusterSync sync(second->maps(), 4);
  REQUIRE(sync.apply(members, vips));
  CHECK(sync.peer_mac(members[1].id) == new_mac);
  CHECK(second->maps().peer_macs()->size() == 1);
  REQUIRE(sync.forget_peer_mac(members[1].id));
  CHECK(second->maps().peer_macs()->empty());
  second->unpin();
}

TEST_CASE("pinned maps of other sizes are named before anything is loaded; the pins are untouched") {
  PinDir pins;
  { load(pins.path); }
  DatapathSettings bigger = small_test_settings(node_id_for("a"), kRing);
  bigger.pin_dir = pins.path;
  bigger.conntrack_entries = 2048;
  auto refused = XdpProgram::load(bigger);
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().message() ==
        "the map pinned at " + pins.path + "/mixlb_ct has max_entries 1024, this configuration "
        "makes it 2048: restore the earlier size, or remove the pins with `mixlb cleanup` (the "
        "connection table goes with them): File exists");
  CHECK(std::filesystem::exists(pins.path + "/mixlb_ct"));
  // The earlier sizes still load, adopting.
  auto same = load(pins.path);
  CHECK(same->adopted_maps());
  same->unpin();
}

TEST_CASE("an upgrade removes the pin of a retired map (mixlb_ct_new) and adopts the others") {
  PinDir pins;
  { load(pins.path); }
  // What the previous version left: its half-open LRU, pinned by name.
  const int old = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, "mixlb_ct_new", sizeof(mixlb_flow_key),
                                 sizeof(mixlb_ct_value), 1024, nullptr);
  REQUIRE(old >= 0);
  REQUIRE(bpf_obj_pin(old, (pins.path + "/mixlb_ct_new").c_str()) == 0);
  ::close(old);
  auto upgraded = load(pins.path);
  CHECK(upgraded->adopted_maps());
  CHECK_FALSE(std::filesystem::exists(pins.path + "/mixlb_ct_new"));
  CHECK(std::filesystem::exists(pins.path + "/mixlb_half_open"));
  upgraded->unpin();
}

TEST_CASE("a failed start removes what it made and keeps what it adopted") {
  PinDir pins;
  const int ifindex = test_net().dp0;
  {
    // A start from nothing that fails after attaching: nothing stays.
    auto fresh = load(pins.path);
    REQUIRE(fresh->attach(ifindex, XdpMode::kNative));
    CHECK_FALSE(fresh->adopted_link());
    fresh->undo_own();
    CHECK(xdp_detached_soon(ifindex));
    CHECK_FALSE(std::filesystem::exists(pins.path));
  }
  {
    auto first = load(pins.path);
    REQUIRE(first->attach(ifindex, XdpMode::kNative));
  }  // a crash: pins and link stay
  auto second = load(pins.path);
  REQUIRE(second->adopted_maps());
  REQUIRE(second->attach(ifindex, XdpMode::kNative));
  CHECK(second->adopted_link());
  CHECK(second->link_state() == XdpProgram::LinkState::kAttached);
  second->undo_own();
  CHECK(query_xdp_mode(ifindex) == AttachMode::kNative);
  CHECK(std::filesystem::exists(pins.path + "/xdp_link"));
  CHECK(std::filesystem::exists(pins.path + "/mixlb_ct"));
  second.reset();
  // What is left is removed by a cleanup: pins gone, the link detaches.
  auto removed = remove_pins(pins.path, false);
  REQUIRE(removed.has_value());
  CHECK(*removed >= 15);
  CHECK(xdp_detached_soon(ifindex));
  CHECK_FALSE(std::filesystem::exists(pins.path));
}

TEST_CASE("a link whose program someone detached is seen as such and attached again") {
  PinDir pins;
  const int ifindex = test_net().dp0;
  auto prog = load(pins.path);
  REQUIRE(prog->attach(ifindex, XdpMode::kNative));
  const int link = bpf_obj_get((pins.path + "/xdp_link").c_str());
  REQUIRE(link >= 0);
  REQUIRE(bpf_link_detach(link) == 0);  // as `bpftool link detach` would
  ::close(link);
  CHECK(prog->link_state() == XdpProgram::LinkState::kDetached);
  CHECK(xdp_detached_soon(ifindex));
  REQUIRE(prog->attach(ifindex, XdpMode::kNative));
  CHECK(prog->link_state() == XdpProgram::LinkState::kAttached);
  CHECK(query_xdp_mode(ifindex) == AttachMode::kNative);
  prog->detach();
  prog->unpin();
}

}  // TEST_SUITE

}  // namespace mixlb
