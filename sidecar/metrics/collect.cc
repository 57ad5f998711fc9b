#include "metrics/collect.h"

#include <algorithm>
#include <chrono>
#include <tuple>

#include "kernel/abi.h"

namespace mixlb::metrics {

// Sized by the enum, so a counter added to the data path cannot compile
// without a place here; test_collect.cc checks that none is left empty.
const std::array<EventCounterMetric, MIXLB_CNT__MAX> kEventCounterMetrics = {{
    {"mixlb_conntrack_hits_total",  // MIXLB_CNT_CT_HIT
     "Packets of a VIP flow found in the connection table."},
    {"mixlb_conntrack_misses_total",  // MIXLB_CNT_CT_MISS
     "Packets of a VIP flow not found in the connection table (new flows, and flows it lost)."},
    {"mixlb_conntrack_inserts_total",  // MIXLB_CNT_CT_INSERT
     "Flows entered into the connection table."},
    {"mixlb_conntrack_insert_failures_total",  // MIXLB_CNT_CT_INSERT_FAIL
     "Flows the connection table refused to enter; they were balanced all the same."},
    {"mixlb_conntrack_non_syn_misses_total",  // MIXLB_CNT_CT_NON_SYN_MISS
     "TCP flows first seen mid-stream (no SYN), placed by the Maglev table."},
    {"mixlb_icmp_errors_total",  // MIXLB_CNT_ICMP_ERROR
     "ICMP errors about a VIP flow, sent to the node serving the flow."},
    {"mixlb_from_peer_frames_total",  // MIXLB_CNT_FROM_PEER
     "Frames a peer had balanced already, delivered to this node's stack."},
}};

const std::array<std::string_view, static_cast<std::size_t>(gossip::DropReason::kCount)>
    kGossipDropReasonLabels = {
        "no_key_authenticates",   // kNoKeyAuthenticates
        "not_encrypted",          // kNotEncrypted
        "unexpected_encryption",  // kUnexpectedEncryption
        "malformed",              // kMalformed
        "misdirected",            // kMisdirected
};

namespace {

// The node ids in the census are numbers; a flow pinned to a node this
// sidecar no longer knows keeps its id so that it is still counted.
std::string node_label(const std::map<std::uint32_t, std::string>& names, std::uint32_t id) {
  const auto found = names.find(id);
  return found != names.end() ? found->second : "#" + std::to_string(id);
}

void write_node(const MetricsFigures& f, Exposition& out) {
  out.gauge("mixlb_node_info", "This sidecar: its node name and mixlb version; always 1.")
      .add({{"node", f.node}, {"version", f.version}}, 1);
  out.gauge("mixlb_uplink_attached",
            "1 when the XDP program runs on the uplink, 0 when the uplink is missing or the "
            "program was detached.")
      .add(f.uplink_attached);
  auto& mode = out.gauge("mixlb_xdp_mode",
                         "How the XDP program is attached to the uplink: 1 for the mode in use "
                         "(native, generic, or none when no program is attached).");
  for (const std::optional<AttachMode> m :
       {std::optional(AttachMode::kNative), std::optional(AttachMode::kGeneric),
        std::optional<AttachMode>()}) {
    mode.add({{"mode", m ? std::string(to_string(*m)) : "none"}}, f.xdp_mode == m);
  }
  auto& checks = out.gauge("mixlb_health_check_healthy",
                           "1 when this node's health check of the service passes (its verdict "
                           "after rise and fall), 0 when it fails.");
  for (const auto& h : f.health) checks.add({{"service", h.service}}, h.healthy);
  auto& health = out.gauge("mixlb_app_healthy",
                           "1 when the node's app passes its health check, as this node last "
                           "heard it (its own check for itself, gossip for the others).");
  for (const auto& a : f.app_health) health.add({{"node", a.node}}, a.healthy);
  out.counter("mixlb_table_rebuilds_total",
              "Times this node rebuilt its tables from the member set and VIP list.")
      .add(f.table_rebuilds);
  out.counter("mixlb_table_publications_total",
              "Maglev tables published into the data path (one per VIP whose table changed).")
      .add(f.datapath.table_publications);
}

void write_vips(const DatapathFigures& d, Exposition& out) {
  auto& backends = out.gauge("mixlb_vip_backends", "Nodes in the VIP's live Maglev table.");
  auto& packets = out.counter(
      "mixlb_vip_packets_total",
      "VIP packets by path: local (balanced here, served here), forwarded (balanced here, sent "
      "to a peer), from_peer (balanced by a peer, served here).");
  auto& bytes = out.counter("mixlb_vip_bytes_total",
                            "Bytes of the packets of mixlb_vip_packets_total, by the same path.");
  auto& drops = out.counter("mixlb_vip_drops_total", "VIP packets dropped, by reason.");
  auto& node_packets = out.counter(
      "mixlb_vip_node_packets_total",
      "VIP packets this node balanced, by the node they went to (role local: this node).");
  auto& node_bytes = out.counter("mixlb_vip_node_bytes_total",
                                 "Bytes of the packets of mixlb_vip_node_packets_total.");
  auto& weight = out.gauge("mixlb_vip_node_weight",
                           "The node's weight in the VIP's table; 0 when it does not serve the "
                           "VIP (drained, app failing, departed, or not configured for it).");
  for (const auto& v : d.vips) {
    backends.add({{"vip", v.vip}}, v.backends);
    for (const auto& n : v.nodes) weight.add({{"vip", v.vip}, {"node", n.name}}, n.weight);
    if (!v.vip_id) continue;
    const auto& c = v.counters;
    const std::pair<const char*, std::pair<std::uint64_t, std::uint64_t>> paths[] = {
        {"local", {c.local_pkts, c.local_bytes}},
        {"forwarded", {c.fwd_pkts, c.fwd_bytes}},
        {"from_peer", {c.from_peer_pkts, c.from_peer_bytes}}};
    for (const auto& [path, figures] : paths) {
      packets.add({{"vip", v.vip}, {"path", path}}, figures.first);
      bytes.add({{"vip", v.vip}, {"path", path}}, figures.second);
    }
    for (std::size_t r = 1; r < c.drops.size(); ++r)
      drops.add({{"vip", v.vip}, {"reason", std::string(kDropReasonNames[r])}}, c.drops[r]);
    for (const auto& n : v.nodes) {
      Labels labels{{"vip", v.vip}, {"node", n.name}, {"role", n.self ? "local" : "forwarded"}};
      node_packets.add(labels, n.counters.pkts);
      node_bytes.add(std::move(labels), n.counters.bytes);
    }
  }
}

void write_global(const GlobalCounters& g, Exposition& out) {
  for (std::size_t i = 0; i < g.events.size(); ++i)
    out.counter(kEventCounterMetrics[i].name, kEventCounterMetrics[i].help).add(g.events[i]);
  auto& drops = out.counter("mixlb_drops_total", "Packets the data path dropped, by reason.");
  for (std::size_t r = 1; r < g.drops.size(); ++r)
    drops.add({{"reason", std::string(kDropReasonNames[r])}}, g.drops[r]);
  auto& fib = out.counter("mixlb_fib_lookups_total",
                          "Route lookups (bpf_fib_lookup) towards a peer, by result.");
  for (unsigned code = 0; code < g.fib_rets.size(); ++code) {
    // The kernel's named results always; a code this build has no name for
    // only once it has happened.
    std::string result = fib_result_name(code);
    if (result.starts_with("code_") && g.fib_rets[code] == 0) continue;
    fib.add({{"result", std::move(result)}}, g.fib_rets[code]);
  }
}

void write_conntrack(const ConntrackCensus& census, const DatapathFigures& d, Exposition& out) {
  out.gauge("mixlb_conntrack_entries", "Entries in the connection table (counted by a walk).")
      .add(census.entries);
  out.gauge("mixlb_conntrack_entries_limit",
            "The connection table's capacity; past it the least recently used flow is evicted.")
      .add(census.capacity);
  out.gauge("mixlb_conntrack_pressure_ratio", "Connection-table entries over its capacity.")
      .add(census.capacity ? static_cast<double>(census.entries) / census.capacity : 0.0);
  out.gauge("mixlb_conntrack_census_duration_seconds",
            "How long the walk of the connection table for this scrape took.")
      .add(std::chrono::duration<double>(census.took).count());
  std::map<std::uint32_t, std::string> vip_names;
  for (const auto& v : d.vips)
    if (v.vip_id) vip_names[*v.vip_id] = v.vip;
  auto& flows = out.gauge(
      "mixlb_conntrack_flows",
      "Flows in the connection table by VIP, serving node and what the client last did: "
      "active (a packet within the active window), closing (TCP FIN or RST seen), idle.");
  for (const auto& [key, count] : census.flows) {
    flows.add({{"vip", node_label(vip_names, key.vip_id)},
               {"node", node_label(d.node_names, key.node_id)},
               {"state", std::string(to_string(key.state))}},
              count);
  }
}

void write_gossip(const GossipFigures& g, Exposition& out) {
  if (!g.enabled) return;
  out.gauge("mixlb_gossip_snapshot_success",
            "1 when the gossip thread answered this scrape in time; the other mixlb_gossip_ "
            "families are missing when it did not.")
      .add(g.snapshot.has_value());
  if (!g.snapshot) return;
  const auto& s = *g.snapshot;
  const auto& c = s.core;
  const auto& t = s.transport;

  auto& members = out.gauge("mixlb_gossip_members",
                            "Members gossip knows, this node included, by state.");
  for (const auto state : {gossip::MemberState::kAlive, gossip::MemberState::kSuspect,
                           gossip::MemberState::kDead, gossip::MemberState::kLeft}) {
    members.add({{"state", std::string(gossip::to_string(state))}},
                std::count_if(s.members.begin(), s.members.end(),
                              [&](const gossip::Member& m) { return m.state == state; }));
  }
  out.gauge("mixlb_gossip_health_score",
            "Lifeguard local health: 0 is healthy; it rises while this node misses acks and "
            "slows its probing.")
      .add(s.health_score);
  out.gauge("mixlb_gossip_incarnation",
            "This node's incarnation: it rises with each refutation and each metadata change.")
      .add(s.self.incarnation);
  // The core's counters that need no label, as (name, help, value).
  const std::tuple<std::string_view, std::string_view, std::uint64_t> plain[] = {
      {"mixlb_gossip_probes_total", "Failure-detection probes this node sent.", c.probes},
      {"mixlb_gossip_probe_failures_total", "Probes without an ack by the end of their interval.",
       c.probes_failed},
      {"mixlb_gossip_indirect_probes_total", "Probes that needed ping-reqs through others.",
       c.indirect_probes},
      {"mixlb_gossip_suspicions_raised_total", "Members this node itself suspected.",
       c.suspicions_raised},
      {"mixlb_gossip_deaths_declared_total",
       "Suspicion timers of this node that ran out (members it declared dead).",
       c.deaths_declared},
      {"mixlb_gossip_refutations_total", "Suspicions about this node that it refuted.",
       c.refutations},
      {"mixlb_gossip_event_burst_packets_total",
       "Gossip packets sent beyond gossip_nodes in a round, for user events the round's packets had no room for.",
       c.event_burst_packets},
      {"mixlb_gossip_events_dropped_total",
       "User events (gossip-mode invalidations) refused or not relayed: the event queue was full.",
       c.events_dropped},
  };
  for (const auto& [name, help, value] : plain) out.counter(name, help).add(value);
  out.counter("mixlb_gossip_sent_bytes_total",
              "Gossip bytes sent: UDP datagrams (sealed) and TCP push-pull streams.")
      .add({{"protocol", "udp"}}, c.bytes_sent)
      .add({{"protocol", "tcp"}}, t.stream_bytes_out);
  out.counter("mixlb_gossip_received_bytes_total",
              "Gossip bytes received: UDP datagrams and TCP push-pull streams.")
      .add({{"protocol", "udp"}}, c.bytes_received)
      .add({{"protocol", "tcp"}}, t.stream_bytes_in);
  auto& dropped = out.counter("mixlb_gossip_dropped_messages_total",
                              "Gossip packets dropped before use, by reason.");
  for (std::size_t r = 0; r < c.drops.size(); ++r)
    dropped.add({{"reason", std::string(kGossipDropReasonLabels[r])}}, c.drops[r]);
  out.counter("mixlb_gossip_socket_errors_total", "Gossip socket errors, by operation.")
      .add({{"op", "udp_send"}}, t.udp_send_errors)
      .add({{"op", "udp_receive"}}, t.udp_receive_errors);
  out.counter("mixlb_gossip_truncated_datagrams_total",
              "UDP datagrams longer than the receive buffer, dropped.")
      .add(t.udp_truncated);
  out.counter("mixlb_gossip_streams_refused_total",
              "Push-pull connections refused: more than the inbound limit at once.")
      .add(t.streams_refused);
  out.counter("mixlb_gossip_stream_failures_total",
              "Push-pull exchanges that failed (timeout, bad frame, read error), by direction.")
      .add({{"direction", "inbound"}}, t.streams_in_failed)
      .add({{"direction", "outbound"}}, t.streams_out_failed);
}

}  // namespace

DpResult<DatapathFigures> read_datapath(const DatapathMaps& maps, const ClusterSync& sync,
                                        std::span<const VipEntry> table_vips,
                                        std::span<const PeerState> peers) {
  DatapathFigures out;
  auto global = maps.counters();
  if (!global) return std::unexpected(global.error());
  out.global = *global;
  out.table_publications = sync.publications();
  for (const auto& p : peers) out.node_names[p.member.id] = p.member.name;

  for (const auto& v : table_vips) {
    VipFigures vip;
    vip.vip = v.label;
    vip.backends = sync.backends(v.key).size();
    vip.vip_id = sync.vip_id(v.key);
    if (vip.vip_id) {
      auto c = maps.vip_counters(*vip.vip_id);
      if (!c) return std::unexpected(c.error());
      vip.counters = *c;
    }
    for (const auto& p : peers) {
      const auto slot = sync.stats_slot(p.member.id);
      if (!slot) continue;
      const bool serving = !p.member.departed &&
                           (!v.serving || std::find(v.serving->begin(), v.serving->end(),
                                                    p.member.name) != v.serving->end());
      VipFigures::Node node{p.member.name, p.member.self, serving ? p.member.weight : 0, {}};
      if (vip.vip_id) {
        auto n = maps.node_counters(*vip.vip_id, *slot);
        if (!n) return std::unexpected(n.error());
        node.counters = *n;
      }
      vip.nodes.push_back(std::move(node));
    }
    out.vips.push_back(std::move(vip));
  }
  return out;
}

std::vector<AppHealth> app_health_of(const Membership& membership) {
  std::vector<AppHealth> out;
  for (const auto& [name, r] : membership.records()) {
    const bool up =
        r.state == gossip::MemberState::kAlive || r.state == gossip::MemberState::kSuspect;
    if (up && r.metadata) out.push_back({name, r.metadata->app_healthy});
  }
  return out;
}

namespace {

void write_sockets(const SocketsFigures& f, Exposition& out) {
  auto& sockets = out.gauge("mixlb_reuseport_sockets",
                            "The app's sockets the reuseport selector manages, by service, generation and the "
                            "generation's state (active, starting, draining).");
  auto& flows = out.counter("mixlb_reuseport_flows_total",
                            "Flows the reuseport selector placed on a generation's sockets, by how: selected "
                            "(a new flow), migrated (a closing listener's queued connection), sticky (a UDP "
                            "datagram that followed its flow), fallback (the chosen socket was gone; the "
                            "kernel's hash placed it).");
  auto& udp = out.gauge("mixlb_reuseport_udp_flows", "UDP flows pinned to a generation's sockets.");
  for (const auto& g : f.generations) {
    const std::string number = std::to_string(g.number);
    sockets.add({{"service", g.service}, {"generation", number}, {"state", g.state}}, g.sockets);
    for (const auto& [how, n] : {std::pair{"selected", g.selected}, std::pair{"migrated", g.migrated},
                                 std::pair{"sticky", g.sticky}, std::pair{"fallback", g.fallback}})
      flows.add({{"service", g.service}, {"generation", number}, {"outcome", how}}, n);
    if (g.udp_flows) udp.add({{"service", g.service}, {"generation", number}}, *g.udp_flows);
  }
}

void write_lifecycle(const LifecycleFigures& l, Exposition& out) {
  out.counter("mixlb_conntrack_sweeps_total", "Walks of the connection table by the sweeper.").add(l.sweeps);
  auto& swept = out.counter("mixlb_conntrack_swept_total",
                            "Entries the sweeper removed, by the rule that removed them.");
  for (const auto& [reason, n] : l.swept) swept.add({{"reason", reason}}, n);
  if (l.closes) {
    auto& closes = out.counter("mixlb_close_events_total",
                               "Local TCP sockets of a VIP that closed, by what close tracking did: seen, "
                               "deleted (this node's entry of the flow), ring_full (the event was lost).");
    for (const auto& [outcome, n] : *l.closes) closes.add({{"outcome", outcome}}, n);
  }
  // The invalidator's counters, by name (invalidation_counter_list), into
  // families of one unit each.
  const std::string& mode = l.invalidation_mode;
  auto& messages = out.counter("mixlb_invalidation_messages_total",
                               "Invalidation datagrams (or gossip events) sent by this node and received "
                               "from the others.");
  auto& flows = out.counter(
      "mixlb_invalidation_flows_total",
      "Flows through invalidation: closed here (closed), of them with nothing to send (local_only) or "
      "sent to every peer for want of a known origin (fallback), named in what was sent (sent), "
      "dropped beyond the backlog (dropped); named in what was received (received), of them deleted "
      "here (applied) or without an entry pointing at the sender (unmatched).");
  auto& errors = out.counter("mixlb_invalidation_send_errors_total",
                             "Invalidation datagrams or events the kernel or the gossip layer refused.");
  auto& refused = out.counter("mixlb_invalidations_refused_total",
                              "Received invalidations refused, by reason.");
  static constexpr std::pair<std::string_view, std::string_view> kFlows[] = {
      {"closes", "closed"},         {"local_only", "local_only"}, {"fallback", "fallback"},
      {"sent_flows", "sent"},       {"dropped", "dropped"},       {"received_flows", "received"},
      {"applied", "applied"},       {"unmatched", "unmatched"}};
  for (const auto& [name, n] : l.invalidation) {
    if (name == "sent_messages" || name == "received_messages") {
      messages.add({{"mode", mode}, {"direction", name == "sent_messages" ? "sent" : "received"}}, n);
    } else if (name == "send_errors") {
      errors.add({{"mode", mode}}, n);
    } else if (name.starts_with("refused_")) {
      refused.add({{"mode", mode}, {"reason", name.substr(8)}}, n);
    } else {
      for (const auto& [counter, outcome] : kFlows)
        if (name == counter) flows.add({{"mode", mode}, {"outcome", std::string(outcome)}}, n);
    }
  }
  if (l.latency_samples > 0) {
    auto& latency = out.gauge("mixlb_invalidation_latency_seconds",
                              "Close on the serving node to delete here, over the last 8,192 entries "
                              "deleted by invalidation, at the 50th and 99th percentile.");
    latency.add({{"mode", mode}, {"percentile", "p50"}}, l.latency_p50_seconds);
    latency.add({{"mode", mode}, {"percentile", "p99"}}, l.latency_p99_seconds);
  }
}

}  // namespace

void write_metrics(const MetricsFigures& figures, Exposition& out) {
  write_node(figures, out);
  write_vips(figures.datapath, out);
  write_global(figures.datapath.global, out);
  if (figures.conntrack) write_conntrack(*figures.conntrack, figures.datapath, out);
  write_gossip(figures.gossip, out);
  if (figures.lifecycle) write_lifecycle(*figures.lifecycle, out);
  if (figures.sockets) write_sockets(*figures.sockets, out);
}

std::string render_metrics(const MetricsFigures& figures) {
  Exposition out;
  write_metrics(figures, out);
  return out.text();
}

}  // namespace mixlb::metrics
