#include "status.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>

#include "cluster/node_id.h"
#include "kernel/abi.h"

namespace mixlb {

nlohmann::json stats_json(const NodeCountersView& view) {
  nlohmann::json out;
  out["node"] = view.node;
  out["node_id"] = node_id_for(view.node);

  auto counters = view.maps.counters();
  if (!counters) throw std::runtime_error(counters.error().message());
  nlohmann::json events = nlohmann::json::object();
  for (std::size_t i = 0; i < counters->events.size(); ++i)
    events[std::string(kCounterNames[i])] = counters->events[i];
  nlohmann::json drops = nlohmann::json::object();
  for (std::size_t r = 1; r < counters->drops.size(); ++r)
    drops[std::string(kDropReasonNames[r])] = counters->drops[r];
  nlohmann::json fib = nlohmann::json::object();
  for (std::size_t code = 0; code < counters->fib_rets.size(); ++code)
    if (counters->fib_rets[code] != 0)
      fib[fib_result_name(static_cast<unsigned>(code))] = counters->fib_rets[code];
  out["counters"] = {{"events", events}, {"drops", drops}, {"fib", fib}};

  nlohmann::json vips = nlohmann::json::array();
  for (const auto& v : view.table_vips) {
    nlohmann::json weights = nlohmann::json::object();
    for (const auto& p : view.peers) {
      if (p.member.departed) continue;
      const bool serving = !v.serving || std::find(v.serving->begin(), v.serving->end(),
                                                    p.member.name) != v.serving->end();
      if (serving) weights[p.member.name] = p.member.weight;
    }
    nlohmann::json entry{
        {"vip", v.label}, {"backends", view.sync.backends(v.key)}, {"weights", weights}};
    const auto id = view.sync.vip_id(v.key);
    if (id) {
      entry["vip_id"] = *id;
      auto c = view.maps.vip_counters(*id);
      if (!c) throw std::runtime_error(c.error().message());
      nlohmann::json vip_drops = nlohmann::json::object();
      for (std::size_t r = 1; r < c->drops.size(); ++r)
        vip_drops[std::string(kDropReasonNames[r])] = c->drops[r];
      entry["counters"] = {{"local_pkts", c->local_pkts},
                           {"local_bytes", c->local_bytes},
                           {"fwd_pkts", c->fwd_pkts},
                           {"fwd_bytes", c->fwd_bytes},
                           {"from_peer_pkts", c->from_peer_pkts},
                           {"from_peer_bytes", c->from_peer_bytes},
                           {"drops", vip_drops}};
      // Served here (this node's slot) or forwarded to each member: every
      // serving member, and any other one that still has counts (flows that
      // the connection table keeps on a node no longer serving the VIP).
      nlohmann::json per_node = nlohmann::json::array();
      for (const auto& p : view.peers) {
        const auto slot = view.sync.stats_slot(p.member.id);
        if (!slot) continue;
        auto n = view.maps.node_counters(*id, *slot);
        if (!n) throw std::runtime_error(n.error().message());
        if (!weights.contains(p.member.name) && n->pkts == 0) continue;
        per_node.push_back({{"name", p.member.name},
                            {"self", p.member.self},
                            {"pkts", n->pkts},
                            {"bytes", n->bytes}});
      }
      entry["per_node"] = per_node;
    }
    vips.push_back(entry);
  }
  out["vips"] = vips;
  return out;
}

nlohmann::json nodes_json(std::span<const PeerState> peers) {
  nlohmann::json nodes = nlohmann::json::array();
  for (const auto& p : peers) {
    nodes.push_back({{"name", p.member.name},
                     {"id", p.member.id},
                     {"address", p.member.address.to_string()},
                     {"weight", p.member.weight},
                     {"mac", p.mac ? format_mac(*p.mac) : std::string("-")},
                     {"self", p.member.self},
                     {"departed", p.member.departed},
                     {"neighbour", p.neighbour},
                     {"managed_neighbour", p.managed_neighbour}});
  }
  return nodes;
}

nlohmann::json members_json(const MembersView& view) {
  const auto& membership = view.membership;
  const auto in_tables = membership.in_tables();
  const auto now = std::chrono::steady_clock::now();
  std::vector<std::string> departed;
  for (const auto& m : membership.members(now))
    if (m.departed) departed.push_back(m.name);
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [name, r] : membership.records()) {
    std::string state(gossip::to_string(r.state));
    std::uint32_t incarnation = r.incarnation;
    if (r.self && view.snapshot) {
      state = gossip::to_string(view.snapshot->self.state);
      incarnation = view.snapshot->self.incarnation;
    }
    nlohmann::json entry{
        {"name", name},
        {"self", r.self},
        {"state", state},
        {"incarnation", incarnation},
        {"gossip_address", r.gossip_address.to_string()},
        {"in_tables", std::find(in_tables.begin(), in_tables.end(), name) != in_tables.end()},
        {"since_s", std::chrono::duration<double>(now - r.since).count()},
    };
    if (std::find(departed.begin(), departed.end(), name) != departed.end()) {
      // Gone for new flows; its established flows are still forwarded to it.
      entry["departed"] = true;
      entry["flows_kept_s"] =
          std::chrono::duration<double>(r.since + membership.flow_grace() - now).count();
    }
    if (r.metadata) {
      entry["address"] = r.metadata->address.to_string();
      entry["mac"] = format_mac(r.metadata->mac);
      entry["weight"] = r.metadata->weight;
      entry["app_healthy"] = r.metadata->app_healthy;
      entry["restarting"] = r.metadata->restarting;
      entry["vips"] = membership.vip_labels(*r.metadata);
    }
    if (!r.problem.empty()) entry["problem"] = r.problem;
    list.push_back(entry);
  }
  nlohmann::json out{{"node", view.node},
                     {"cluster", view.cluster},
                     {"gossip_address", view.gossip_address},
                     {"members", list}};
  if (view.snapshot) {
    const auto& c = view.snapshot->core;
    std::uint64_t drops = 0;
    for (auto d : c.drops) drops += d;
    out["gossip"] = {{"health_score", view.snapshot->health_score},
                     {"probes", c.probes},
                     {"probes_failed", c.probes_failed},
                     {"suspicions_raised", c.suspicions_raised},
                     {"deaths_declared", c.deaths_declared},
                     {"refutations", c.refutations},
                     {"bytes_sent", c.bytes_sent},
                     {"bytes_received", c.bytes_received},
                     {"drops", drops},
                     {"last_drop", c.last_drop},
                     {"last_error", view.snapshot->transport.last_error}};
  } else {
    out["gossip"] = {{"error", "the gossip thread did not answer: " + view.snapshot_error}};
  }
  return out;
}

}  // namespace mixlb
