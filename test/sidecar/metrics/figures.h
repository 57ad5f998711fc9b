#pragma once
// A realistic set of figures for the metric families: three nodes (mix1 is
// this node, mix3 drained), six VIP ports of both families and protocols,
// one of them not published yet, counters on every path, drops, fib results
// (an unnamed code among them), a connection-table census with a flow
// pinned to a node this sidecar has forgotten, and a gossip snapshot with
// members in every state. The collector tests, the promtool check and the
// scrape benchmark all use it.
#include <cstdint>
#include <string>
#include <vector>

#include "metrics/collect.h"

namespace mixlb::test {

inline metrics::MetricsFigures realistic_figures() {
  metrics::MetricsFigures f;
  f.node = "mix1";
  f.version = "0.1.0";
  f.xdp_mode = AttachMode::kNative;
  f.uplink_attached = true;
  f.table_rebuilds = 17;
  f.health = {{"app", true}};
  f.app_health = {{"mix1", true}, {"mix2", true}, {"mix3", false}};
  metrics::LifecycleFigures l;
  l.sweeps = 360;
  l.swept = {{"udp_idle", 120}, {"tcp_closing", 14}, {"tcp_idle", 2}};
  l.closes = {{{"seen", 5200}, {"deleted", 1730}, {"ring_full", 0}}};
  l.invalidation_mode = "targeted";
  l.invalidation = {{"closes", 5200},          {"local_only", 1730},     {"fallback", 3},
                    {"sent_messages", 410},    {"sent_flows", 3470},     {"send_errors", 0},
                    {"dropped", 0},            {"received_messages", 395}, {"received_flows", 3390},
                    {"applied", 3385},         {"unmatched", 5},         {"refused_unauthenticated", 2},
                    {"refused_malformed", 0},  {"refused_replayed", 1},  {"refused_stale", 0},
                    {"refused_unknown_sender", 0}};
  l.latency_samples = 3385;
  l.latency_p50_seconds = 0.0008;
  l.latency_p99_seconds = 0.0036;
  f.lifecycle = l;
  metrics::SocketsFigures sockets;
  sockets.generations = {{"tcp 0.0.0.0:80", 4, "draining", 2, 90210, 3, 0, 0, std::nullopt},
                         {"tcp 0.0.0.0:80", 5, "active", 2, 1200, 0, 0, 1, std::nullopt},
                         {"udp 0.0.0.0:443", 2, "active", 4, 800, 0, 15000, 0, 640},
                         {"udp 0.0.0.0:443", 3, "starting", 4, 0, 0, 0, 0, 0}};
  f.sockets = sockets;

  auto& d = f.datapath;
  d.table_publications = 42;
  d.node_names = {{11, "mix1"}, {12, "mix2"}, {13, "mix3"}};
  d.global.events = {9000, 310, 305, 5, 12, 3, 4410};
  d.global.drops[MIXLB_DROP_NO_BACKEND] = 7;
  d.global.drops[MIXLB_DROP_FIB_NO_NEIGH] = 2;
  d.global.fib_rets[0] = 6010;  // success
  d.global.fib_rets[7] = 2;     // no_neigh
  d.global.fib_rets[12] = 1;    // a code this build has no name for

  const char* labels[] = {"10.100.0.1:80/tcp",   "10.100.0.1:443/tcp", "10.100.0.2:53/udp",
                          "10.100.0.3:*/udp",    "[fd00:100::1]:80/tcp", "[fd00:100::1]:443/tcp"};
  for (std::uint32_t i = 0; i < 6; ++i) {
    metrics::VipFigures v;
    v.vip = labels[i];
    if (i == 5) {  // configured, not published yet: no id, no counters
      v.nodes = {{"mix1", true, 1, {}}, {"mix2", false, 2, {}}, {"mix3", false, 0, {}}};
      d.vips.push_back(v);
      continue;
    }
    v.vip_id = i;
    v.backends = 2;
    const std::uint64_t k = 1000 * (i + 1);
    v.counters.local_pkts = k;
    v.counters.local_bytes = k * 64;
    v.counters.fwd_pkts = 2 * k;
    v.counters.fwd_bytes = 2 * k * 1400;
    v.counters.from_peer_pkts = k / 2;
    v.counters.from_peer_bytes = k * 700;
    v.counters.drops[MIXLB_DROP_NO_BACKEND] = i;
    v.nodes = {{"mix1", true, 1, {k, k * 64}},
               {"mix2", false, 2, {2 * k, 2 * k * 1400}},
               {"mix3", false, 0, {0, 0}}};
    d.vips.push_back(v);
  }

  metrics::ConntrackCensus census;
  census.capacity = 65536;
  census.took = std::chrono::microseconds(2150);
  using metrics::FlowState;
  census.flows = {{{0, 11, FlowState::kActive}, 120}, {{0, 12, FlowState::kActive}, 240},
                  {{0, 12, FlowState::kClosing}, 30}, {{1, 11, FlowState::kIdle}, 9},
                  {{3, 12, FlowState::kActive}, 55},  {{2, 99, FlowState::kIdle}, 1}};
  for (const auto& [key, count] : census.flows) census.entries += count;
  f.conntrack = census;

  gossip::TransportSnapshot s;
  s.health_score = 1;
  s.self.name = "mix1";
  s.self.incarnation = 3;
  const gossip::MemberState states[] = {gossip::MemberState::kAlive, gossip::MemberState::kAlive,
                                        gossip::MemberState::kSuspect, gossip::MemberState::kDead,
                                        gossip::MemberState::kLeft};
  const char* names[] = {"mix1", "mix2", "mix3", "mix4", "mix5"};
  for (int i = 0; i < 5; ++i) {
    gossip::Member m;
    m.name = names[i];
    m.state = states[i];
    s.members.push_back(m);
  }
  s.core.probes = 1520;
  s.core.probes_failed = 3;
  s.core.indirect_probes = 4;
  s.core.suspicions_raised = 1;
  s.core.deaths_declared = 1;
  s.core.event_burst_packets = 40;
  s.core.events_dropped = 2;
  s.core.bytes_sent = 412330;
  s.core.bytes_received = 409876;
  s.core.drops[static_cast<std::size_t>(gossip::DropReason::kNoKeyAuthenticates)] = 6;
  s.transport.stream_bytes_in = 20480;
  s.transport.stream_bytes_out = 19000;
  s.transport.udp_send_errors = 2;
  s.transport.streams_out_failed = 1;
  f.gossip.enabled = true;
  f.gossip.snapshot = s;
  return f;
}

}  // namespace mixlb::test
