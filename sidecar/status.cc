#include "status.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>

#include "cluster/node_id.h"
#include "kernel/abi.h"

namespace mixlb {

namespace {

// The drop counters by reason name; reason 0 is "no drop".
template <typename Drops>
Counts drop_counts(const Drops& drops) {
  Counts out;
  for (std::size_t r = 1; r < drops.size(); ++r) out[std::string(kDropReasonNames[r])] = drops[r];
  return out;
}

}  // namespace

StatsResult stats_result(const NodeCountersView& view) {
  StatsResult out;
  out.node = view.node;
  out.node_id = node_id_for(view.node);

  auto counters = view.maps.counters();
  if (!counters) throw std::runtime_error(counters.error().message());
  for (std::size_t i = 0; i < counters->events.size(); ++i)
    out.counters.events[std::string(kCounterNames[i])] = counters->events[i];
  out.counters.drops = drop_counts(counters->drops);
  for (std::size_t code = 0; code < counters->fib_rets.size(); ++code)
    if (counters->fib_rets[code] != 0)
      out.counters.fib[fib_result_name(static_cast<unsigned>(code))] = counters->fib_rets[code];

  for (const auto& v : view.table_vips) {
    VipStats entry;
    entry.vip = v.label;
    entry.backends = view.sync.backends(v.key);
    auto& weights = entry.weights.emplace();
    for (const auto& p : view.peers) {
      if (p.member.departed) continue;
      const bool serving = !v.serving || std::find(v.serving->begin(), v.serving->end(),
                                                    p.member.name) != v.serving->end();
      if (serving) weights[p.member.name] = p.member.weight;
    }
    entry.vip_id = view.sync.vip_id(v.key);
    if (entry.vip_id) {
      auto c = view.maps.vip_counters(*entry.vip_id);
      if (!c) throw std::runtime_error(c.error().message());
      entry.counters = VipPackets{c->local_pkts,     c->local_bytes,     c->fwd_pkts,
                                  c->fwd_bytes,      c->from_peer_pkts,  c->from_peer_bytes,
                                  drop_counts(c->drops)};
      // Served here (this node's slot) or forwarded to each member: every
      // serving member, and any other one that still has counts (flows that
      // the connection table keeps on a node no longer serving the VIP).
      auto& per_node = entry.per_node.emplace();
      for (const auto& p : view.peers) {
        const auto slot = view.sync.stats_slot(p.member.id);
        if (!slot) continue;
        auto n = view.maps.node_counters(*entry.vip_id, *slot);
        if (!n) throw std::runtime_error(n.error().message());
        if (!weights.contains(p.member.name) && n->pkts == 0) continue;
        per_node.push_back({p.member.name, p.member.self, n->pkts, n->bytes});
      }
    }
    out.vips.push_back(std::move(entry));
  }
  return out;
}

std::vector<NodeRow> node_rows(std::span<const PeerState> peers) {
  std::vector<NodeRow> nodes;
  for (const auto& p : peers) {
    nodes.push_back({p.member.name, p.member.id, p.member.address.to_string(), p.member.weight,
                     p.mac ? format_mac(*p.mac) : std::string("-"), p.member.self,
                     p.member.departed, p.neighbour, p.managed_neighbour});
  }
  return nodes;
}

MembersResult members_result(const MembersView& view) {
  const auto& membership = view.membership;
  const auto in_tables = membership.in_tables();
  const auto now = std::chrono::steady_clock::now();
  std::vector<std::string> departed;
  for (const auto& m : membership.members(now))
    if (m.departed) departed.push_back(m.name);
  MembersResult out;
  out.node = view.node;
  out.cluster = view.cluster;
  out.gossip_address = view.gossip_address;
  for (const auto& [name, r] : membership.records()) {
    MemberRow row;
    row.name = name;
    row.self = r.self;
    row.state = gossip::to_string(r.state);
    row.incarnation = r.incarnation;
    if (r.self && view.snapshot) {
      row.state = gossip::to_string(view.snapshot->self.state);
      row.incarnation = view.snapshot->self.incarnation;
    }
    row.gossip_address = r.gossip_address.to_string();
    row.in_tables = std::find(in_tables.begin(), in_tables.end(), name) != in_tables.end();
    row.since_s = std::chrono::duration<double>(now - r.since).count();
    if (std::find(departed.begin(), departed.end(), name) != departed.end()) {
      // Gone for new flows; its established flows are still forwarded to it.
      row.departed = true;
      row.flows_kept_s =
          std::chrono::duration<double>(r.since + membership.flow_grace() - now).count();
    }
    if (r.metadata) {
      row.address = r.metadata->address.to_string();
      row.mac = format_mac(r.metadata->mac);
      row.weight = r.metadata->weight;
      row.app_healthy = r.metadata->app_healthy;
      row.restarting = r.metadata->restarting;
      row.vips = membership.vip_labels(*r.metadata);
    }
    if (!r.problem.empty()) row.problem = r.problem;
    out.members.push_back(std::move(row));
  }
  if (view.snapshot) {
    const auto& c = view.snapshot->core;
    GossipCounters& g = out.gossip.emplace();
    g.health_score = view.snapshot->health_score;
    g.probes = c.probes;
    g.probes_failed = c.probes_failed;
    g.suspicions_raised = c.suspicions_raised;
    g.deaths_declared = c.deaths_declared;
    g.refutations = c.refutations;
    g.bytes_sent = c.bytes_sent;
    g.bytes_received = c.bytes_received;
    for (auto d : c.drops) g.drops += d;
    g.events_dropped = c.events_dropped;
    g.last_drop = c.last_drop;
    g.last_error = view.snapshot->transport.last_error;
  } else {
    out.gossip_error = "the gossip thread did not answer: " + view.snapshot_error;
  }
  return out;
}

}  // namespace mixlb
