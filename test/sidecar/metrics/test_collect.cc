// The mixlb metric families from canned figures (figures.h): each figure
// lands in its family under the right labels, every data-path counter and
// gossip drop reason has a name, families that have nothing to say are left
// out rather than faked, and a flow's state is read from its entry as the
// census defines it.
#include <doctest/doctest.h>

#include <algorithm>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "figures.h"
#include "metrics/collect.h"
#include "metrics/conntrack_census.h"

namespace mixlb::metrics {
namespace {

bool has_line(const std::string& text, const std::string& line) {
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);)
    if (l == line) return true;
  return false;
}

std::size_t count_prefix(const std::string& text, const std::string& prefix) {
  std::istringstream in(text);
  std::size_t n = 0;
  for (std::string l; std::getline(in, l);) n += l.starts_with(prefix);
  return n;
}

TEST_CASE("node: info, uplink, XDP mode one-hot, health checks, app health, table rebuilds") {
  const std::string text = render_metrics(test::realistic_figures());
  CHECK(has_line(text, "mixlb_node_info{node=\"mix1\",version=\"0.1.0\"} 1"));
  CHECK(has_line(text, "mixlb_uplink_attached 1"));
  CHECK(has_line(text, "mixlb_xdp_mode{mode=\"native\"} 1"));
  CHECK(has_line(text, "mixlb_xdp_mode{mode=\"generic\"} 0"));
  CHECK(has_line(text, "mixlb_xdp_mode{mode=\"none\"} 0"));
  CHECK(has_line(text, "mixlb_health_check_healthy{service=\"app\"} 1"));
  CHECK(has_line(text, "mixlb_app_healthy{node=\"mix3\"} 0"));
  CHECK(has_line(text, "mixlb_app_healthy{node=\"mix2\"} 1"));
  CHECK(has_line(text, "mixlb_table_rebuilds_total 17"));
  CHECK(has_line(text, "mixlb_table_publications_total 42"));

  auto detached = test::realistic_figures();
  detached.xdp_mode.reset();
  detached.uplink_attached = false;
  const std::string d = render_metrics(detached);
  CHECK(has_line(d, "mixlb_xdp_mode{mode=\"none\"} 1"));
  CHECK(has_line(d, "mixlb_xdp_mode{mode=\"native\"} 0"));
  CHECK(has_line(d, "mixlb_uplink_attached 0"));

  // One sample per checked service, whatever their number; none unchecked.
  auto services = test::realistic_figures();
  services.health = {{"http", false}, {"dns", true}};
  const std::string s = render_metrics(services);
  CHECK(has_line(s, "mixlb_health_check_healthy{service=\"http\"} 0"));
  CHECK(has_line(s, "mixlb_health_check_healthy{service=\"dns\"} 1"));
  CHECK(count_prefix(s, "mixlb_health_check_healthy{") == 2);
  services.health.clear();
  CHECK(count_prefix(render_metrics(services), "mixlb_health_check_healthy{") == 0);
}

TEST_CASE("per VIP: packets and bytes by path, drops by reason, backends") {
  const std::string text = render_metrics(test::realistic_figures());
  const std::string v = "vip=\"10.100.0.2:53/udp\"";  // the third VIP: k = 3000
  CHECK(has_line(text, "mixlb_vip_packets_total{" + v + ",path=\"local\"} 3000"));
  CHECK(has_line(text, "mixlb_vip_packets_total{" + v + ",path=\"forwarded\"} 6000"));
  CHECK(has_line(text, "mixlb_vip_packets_total{" + v + ",path=\"from_peer\"} 1500"));
  CHECK(has_line(text, "mixlb_vip_bytes_total{" + v + ",path=\"local\"} 192000"));
  CHECK(has_line(text, "mixlb_vip_bytes_total{" + v + ",path=\"forwarded\"} 8400000"));
  CHECK(has_line(text, "mixlb_vip_bytes_total{" + v + ",path=\"from_peer\"} 2100000"));
  CHECK(has_line(text, "mixlb_vip_drops_total{" + v + ",reason=\"no_backend\"} 2"));
  CHECK(has_line(text, "mixlb_vip_drops_total{" + v + ",reason=\"redirect\"} 0"));
  CHECK(has_line(text, "mixlb_vip_backends{" + v + "} 2"));
  // Every reason but "none", for each of the five published VIPs.
  CHECK(count_prefix(text, "mixlb_vip_drops_total{") == 5 * (MIXLB_DROP__MAX - 1));
  CHECK(text.find("reason=\"none\"") == std::string::npos);
}

TEST_CASE("per (VIP, node): this node's row is local, the others forwarded, with weights") {
  const std::string text = render_metrics(test::realistic_figures());
  const std::string v = "vip=\"[fd00:100::1]:80/tcp\"";  // the fifth VIP: k = 5000
  CHECK(has_line(text, "mixlb_vip_node_packets_total{" + v + ",node=\"mix1\",role=\"local\"} 5000"));
  CHECK(has_line(text,
                 "mixlb_vip_node_packets_total{" + v + ",node=\"mix2\",role=\"forwarded\"} 10000"));
  CHECK(has_line(text,
                 "mixlb_vip_node_bytes_total{" + v + ",node=\"mix2\",role=\"forwarded\"} 14000000"));
  CHECK(has_line(text, "mixlb_vip_node_packets_total{" + v + ",node=\"mix3\",role=\"forwarded\"} 0"));
  CHECK(has_line(text, "mixlb_vip_node_weight{" + v + ",node=\"mix2\"} 2"));
  CHECK(has_line(text, "mixlb_vip_node_weight{" + v + ",node=\"mix3\"} 0"));
}

TEST_CASE("a VIP not published yet has its backends and weights, and no counters") {
  const std::string text = render_metrics(test::realistic_figures());
  const std::string v = "vip=\"[fd00:100::1]:443/tcp\"";
  CHECK(has_line(text, "mixlb_vip_backends{" + v + "} 0"));
  CHECK(has_line(text, "mixlb_vip_node_weight{" + v + ",node=\"mix2\"} 2"));
  CHECK(text.find("mixlb_vip_packets_total{" + v) == std::string::npos);
  CHECK(text.find("mixlb_vip_node_packets_total{" + v) == std::string::npos);
}

TEST_CASE("global: every event counter, drops by reason, fib results by name") {
  const auto figures = test::realistic_figures();
  const std::string text = render_metrics(figures);
  CHECK(has_line(text, "mixlb_conntrack_hits_total 9000"));
  CHECK(has_line(text, "mixlb_conntrack_misses_total 310"));
  CHECK(has_line(text, "mixlb_conntrack_inserts_total 305"));
  CHECK(has_line(text, "mixlb_conntrack_insert_failures_total 5"));
  CHECK(has_line(text, "mixlb_conntrack_non_syn_misses_total 12"));
  CHECK(has_line(text, "mixlb_icmp_errors_total 3"));
  CHECK(has_line(text, "mixlb_from_peer_frames_total 4410"));
  CHECK(has_line(text, "mixlb_drops_total{reason=\"no_backend\"} 7"));
  CHECK(has_line(text, "mixlb_drops_total{reason=\"fib_no_neigh\"} 2"));
  CHECK(has_line(text, "mixlb_drops_total{reason=\"unknown_node\"} 0"));
  CHECK(has_line(text, "mixlb_fib_lookups_total{result=\"success\"} 6010"));
  CHECK(has_line(text, "mixlb_fib_lookups_total{result=\"no_neigh\"} 2"));
  CHECK(has_line(text, "mixlb_fib_lookups_total{result=\"blackhole\"} 0"));
  // A code without a name shows once it has happened, and not before.
  CHECK(has_line(text, "mixlb_fib_lookups_total{result=\"code_12\"} 1"));
  CHECK(text.find("result=\"code_13\"") == std::string::npos);
}

TEST_CASE("every data-path event counter and gossip drop reason has its own name") {
  std::set<std::string_view> names;
  for (const auto& m : kEventCounterMetrics) {
    CHECK(m.name.starts_with("mixlb_"));
    CHECK(m.name.ends_with("_total"));
    CHECK_FALSE(m.help.empty());
    names.insert(m.name);
  }
  CHECK(names.size() == kEventCounterMetrics.size());
  std::set<std::string_view> reasons(kGossipDropReasonLabels.begin(),
                                     kGossipDropReasonLabels.end());
  CHECK(reasons.size() == kGossipDropReasonLabels.size());
  CHECK_FALSE(reasons.contains(""));
}

TEST_CASE("connection table: entries, limit, pressure, and flows by VIP, node and state") {
  const std::string text = render_metrics(test::realistic_figures());
  CHECK(has_line(text, "mixlb_conntrack_entries 455"));
  CHECK(has_line(text, "mixlb_conntrack_entries_limit 65536"));
  CHECK(has_line(text, "mixlb_conntrack_pressure_ratio 0.0069427490234375"));
  CHECK(has_line(text, "mixlb_conntrack_census_duration_seconds 0.00215"));
  CHECK(has_line(text,
                 "mixlb_conntrack_flows{vip=\"10.100.0.1:80/tcp\",node=\"mix2\",state=\"closing\"} 30"));
  CHECK(has_line(text,
                 "mixlb_conntrack_flows{vip=\"10.100.0.3:*/udp\",node=\"mix2\",state=\"active\"} 55"));
  // A flow pinned to a node this sidecar forgot is counted under its id.
  CHECK(has_line(text,
                 "mixlb_conntrack_flows{vip=\"10.100.0.2:53/udp\",node=\"#99\",state=\"idle\"} 1"));

  auto uncounted = test::realistic_figures();
  uncounted.conntrack.reset();
  CHECK(render_metrics(uncounted).find("mixlb_conntrack_entries") == std::string::npos);
}

TEST_CASE("gossip: members by state, counters, bytes by protocol, drops by reason") {
  const std::string text = render_metrics(test::realistic_figures());
  CHECK(has_line(text, "mixlb_gossip_snapshot_success 1"));
  CHECK(has_line(text, "mixlb_gossip_members{state=\"alive\"} 2"));
  CHECK(has_line(text, "mixlb_gossip_members{state=\"suspect\"} 1"));
  CHECK(has_line(text, "mixlb_gossip_members{state=\"dead\"} 1"));
  CHECK(has_line(text, "mixlb_gossip_members{state=\"left\"} 1"));
  CHECK(has_line(text, "mixlb_gossip_health_score 1"));
  CHECK(has_line(text, "mixlb_gossip_incarnation 3"));
  CHECK(has_line(text, "mixlb_gossip_probes_total 1520"));
  CHECK(has_line(text, "mixlb_gossip_probe_failures_total 3"));
  CHECK(has_line(text, "mixlb_gossip_indirect_probes_total 4"));
  CHECK(has_line(text, "mixlb_gossip_suspicions_raised_total 1"));
  CHECK(has_line(text, "mixlb_gossip_deaths_declared_total 1"));
  CHECK(has_line(text, "mixlb_gossip_refutations_total 0"));
  CHECK(has_line(text, "mixlb_gossip_event_burst_packets_total 40"));
  CHECK(has_line(text, "mixlb_gossip_events_dropped_total 2"));
  CHECK(has_line(text, "mixlb_gossip_sent_bytes_total{protocol=\"udp\"} 412330"));
  CHECK(has_line(text, "mixlb_gossip_sent_bytes_total{protocol=\"tcp\"} 19000"));
  CHECK(has_line(text, "mixlb_gossip_received_bytes_total{protocol=\"tcp\"} 20480"));
  CHECK(has_line(text, "mixlb_gossip_dropped_messages_total{reason=\"no_key_authenticates\"} 6"));
  CHECK(has_line(text, "mixlb_gossip_dropped_messages_total{reason=\"malformed\"} 0"));
  CHECK(has_line(text, "mixlb_gossip_socket_errors_total{op=\"udp_send\"} 2"));
  CHECK(has_line(text, "mixlb_gossip_stream_failures_total{direction=\"outbound\"} 1"));
}

TEST_CASE("gossip that did not answer is said so, without stale figures; gossip off says nothing") {
  auto silent = test::realistic_figures();
  silent.gossip.snapshot.reset();
  const std::string s = render_metrics(silent);
  CHECK(has_line(s, "mixlb_gossip_snapshot_success 0"));
  CHECK(count_prefix(s, "mixlb_gossip_") == 1);
  CHECK(count_prefix(s, "# HELP mixlb_gossip_") == 1);

  auto off = test::realistic_figures();
  off.gossip = {};
  CHECK(render_metrics(off).find("mixlb_gossip") == std::string::npos);
}

TEST_CASE("two VIPs under one label would be two identical series: the scrape fails instead") {
  auto figures = test::realistic_figures();
  figures.datapath.vips.push_back(figures.datapath.vips.front());
  CHECK_THROWS_AS(render_metrics(figures), std::logic_error);
}

TEST_CASE("app health from membership: alive and suspect members with metadata, self included") {
  Membership membership("mix1", {});
  MemberMetadata self;
  self.app_healthy = true;
  membership.set_self(self, gossip::Address::v4(10, 0, 0, 11, 7946));
  auto event = [](const char* name, gossip::MemberEventKind kind, gossip::MemberState state,
                  bool healthy, std::uint8_t host) {
    MemberMetadata m;
    m.app_healthy = healthy;
    gossip::Member member;
    member.name = name;
    member.address = gossip::Address::v4(10, 0, 0, host, 7946);
    member.state = state;
    const auto bytes = encode_metadata(m);
    member.metadata.assign(bytes.begin(), bytes.end());
    return gossip::MemberEvent{kind, member};
  };
  membership.apply(event("mix2", gossip::MemberEventKind::kJoined, gossip::MemberState::kAlive,
                         false, 12));
  membership.apply(event("mix3", gossip::MemberEventKind::kJoined, gossip::MemberState::kAlive,
                         true, 13));
  membership.apply(event("mix3", gossip::MemberEventKind::kSuspect, gossip::MemberState::kSuspect,
                         true, 13));
  membership.apply(event("mix4", gossip::MemberEventKind::kJoined, gossip::MemberState::kAlive,
                         true, 14));
  membership.apply(event("mix4", gossip::MemberEventKind::kDead, gossip::MemberState::kDead,
                         true, 14));
  std::vector<std::pair<std::string, bool>> seen;
  for (const auto& a : app_health_of(membership)) seen.emplace_back(a.node, a.healthy);
  CHECK(seen == std::vector<std::pair<std::string, bool>>{
                    {"mix1", true}, {"mix2", false}, {"mix3", true}});
}

TEST_CASE("a flow's state: closing after the client's FIN or RST, else active or idle by age") {
  constexpr std::uint64_t kSecond = 1'000'000'000;
  const std::chrono::nanoseconds window = std::chrono::seconds(60);
  const std::uint64_t now = 1000 * kSecond;
  mixlb_flow_key tcp{};
  tcp.proto = 6;
  mixlb_flow_key udp{};
  udp.proto = 17;
  auto entry = [](std::uint64_t last_seen, std::uint32_t flags) {
    mixlb_ct_value v{};
    v.last_seen_ns = last_seen;
    v.flags = flags;
    return v;
  };
  CHECK(classify_flow(tcp, entry(now - kSecond, MIXLB_CT_SEEN_SYN), now, window) ==
        FlowState::kActive);
  CHECK(classify_flow(tcp, entry(now - 60 * kSecond, 0), now, window) == FlowState::kActive);
  CHECK(classify_flow(tcp, entry(now - 61 * kSecond, MIXLB_CT_SEEN_SYN), now, window) ==
        FlowState::kIdle);
  CHECK(classify_flow(tcp, entry(now - kSecond, MIXLB_CT_SEEN_SYN | MIXLB_CT_SEEN_FIN), now,
                      window) == FlowState::kClosing);
  CHECK(classify_flow(tcp, entry(now - 600 * kSecond, MIXLB_CT_SEEN_RST), now, window) ==
        FlowState::kClosing);
  // Touched by the data path after the census read the clock.
  CHECK(classify_flow(tcp, entry(now + 5, 0), now, window) == FlowState::kActive);
  // UDP has no FIN; the flag bits of a UDP entry mean nothing.
  CHECK(classify_flow(udp, entry(now - kSecond, MIXLB_CT_SEEN_FIN), now, window) ==
        FlowState::kActive);
  CHECK(classify_flow(udp, entry(now - 120 * kSecond, 0), now, window) == FlowState::kIdle);
}

}  // namespace
}  // namespace mixlb::metrics
