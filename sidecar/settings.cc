#include "settings.h"

#include <algorithm>
#include <cstring>
#include <set>
#include <stdexcept>

#include "cluster/node_id.h"

namespace mixlb {

std::vector<VipEntry> expand_vips(std::span<const VipConfig> vips) {
  std::vector<VipEntry> out;
  for (const auto& v : vips) {
    // No ports listed: the VIP takes every port (key port 0).
    const std::vector<std::uint16_t> all_ports{0};
    for (auto port : v.ports.empty() ? all_ports : v.ports) {
      VipEntry e;
      e.key = make_vip_key(v.address, port, v.protocol);
      e.label = vip_label(e.key);
      if (!v.nodes.empty()) e.serving = v.nodes;
      out.push_back(e);
    }
  }
  return out;
}

DatapathSettings datapath_settings(const Config& config) {
  DatapathSettings s;
  s.self_node_id = node_id_for(config.node.name);
  s.ring_size = config.datapath.maglev_table_size;
  s.max_vips = config.datapath.max_vips;
  s.conntrack_entries = config.datapath.conntrack_entries;
  s.half_open_entries = config.datapath.half_open_entries;
  s.max_nodes = config.datapath.max_nodes;
  s.pin_dir = config.node.bpffs_dir + "/" + config.node.name;
  return s;
}

std::vector<ServiceCheck> service_checks(const Config& config) {
  std::vector<ServiceCheck> out;
  for (const auto& v : config.vips) {
    const HealthKind kind = v.health.value_or(config.health.kind);
    const std::vector<std::uint16_t> every{0};
    for (std::uint16_t port : v.ports.empty() ? every : v.ports) {
      if (kind == HealthKind::kNone) continue;
      // A UDP service or an every-port entry has no TCP port of its own to
      // check: only its health_port says where.
      const std::uint16_t target = v.health_port != 0 ? v.health_port : v.protocol == 6 ? port : 0;
      if (target == 0) continue;
      HealthCheckConfig c;
      c.kind = kind == HealthKind::kHttp ? HealthCheckConfig::Kind::kHttp : HealthCheckConfig::Kind::kTcp;
      c.host = v.address.to_string();
      c.port = target;
      c.path = v.health_path.value_or(config.health.path);
      c.interval = std::chrono::milliseconds(config.health.interval_ms);
      c.timeout = std::chrono::milliseconds(config.health.timeout_ms);
      c.rise = config.health.rise;
      c.fall = config.health.fall;
      const std::string label = vip_label(make_vip_key(v.address, port, v.protocol));
      auto same = std::find_if(out.begin(), out.end(),
                               [&](const ServiceCheck& s) { return same_target(s.config, c); });
      if (same != out.end())
        same->services.push_back(label);
      else
        out.push_back(ServiceCheck{c, {label}});
    }
  }
  return out;
}

HostPlan host_plan(const Config& config, int lo_ifindex, bool v6_nodes) {
  // The VIP lives on lo; the node must neither answer ARP for it on the
  // uplink nor use it as an ARP source there. bpf_fib_lookup answers only
  // when forwarding is on for the ingress device; the uplink's own key is
  // enough, so the rest of the node keeps its routing settings.
  //
  // Forwarding goes to a node in its own address's family, and
  // bpf_fib_lookup checks the forwarding switch of that family. IPv6
  // forwarding is turned on only when some node address is IPv6: on an
  // interface that forwards, the kernel stops taking router advertisements
  // (with the default accept_ra=1), which a v4-only cluster has no reason to
  // risk. The VIPs' own family does not matter: the packet is not routed.
  struct Setting {
    const char* family;
    const char* scope;  // "all" or, when null, the uplink
    const char* name;
    const char* value;
  };
  std::vector<Setting> settings = {
      {"ipv4", "all", "arp_ignore", "1"},   {"ipv4", "all", "arp_announce", "2"},
      {"ipv4", nullptr, "arp_ignore", "1"}, {"ipv4", nullptr, "arp_announce", "2"},
      {"ipv4", nullptr, "forwarding", "1"},
  };
  if (v6_nodes) settings.push_back({"ipv6", nullptr, "forwarding", "1"});
  HostPlan plan;
  plan.lo_ifindex = lo_ifindex;
  for (const auto& s : settings) {
    // The interface name passed validation, so the key is well formed.
    auto key = SysctlKey::interface_conf(s.family, s.scope ? s.scope : config.node.interface, s.name);
    plan.sysctls.push_back({*key, s.value});
  }
  std::set<Address> seen;
  for (const auto& v : config.vips)
    if (seen.insert(v.address).second) plan.vips.push_back(v.address);
  return plan;
}

std::vector<Member> static_members(const Config& config, const Address& self_address) {
  std::vector<Member> out;
  out.push_back(Member{config.node.name, node_id_for(config.node.name), self_address,
                       config.node.weight, true});
  for (const auto& p : config.peers)
    if (p.name != config.node.name)
      out.push_back(Member{p.name, node_id_for(p.name), p.address, p.weight, false});
  return out;
}

gossip::Address gossip_address(const Address& address, std::uint16_t port) {
  gossip::Address out;
  out.family = address.is_v6() ? gossip::Address::Family::kV6 : gossip::Address::Family::kV4;
  std::memcpy(out.ip.data(), address.words.data(), address.is_v6() ? 16 : 4);
  out.port = port;
  return out;
}

GossipSettings gossip_settings(const Config& config, const Address& self_address,
                               const std::vector<std::uint8_t>& metadata,
                               std::optional<gossip::Keyring> keyring) {
  const auto port = static_cast<std::uint16_t>(config.gossip.port);
  const bool bind_any = config.gossip.bind &&
                        std::all_of(config.gossip.bind->words.begin(), config.gossip.bind->words.end(),
                                    [](std::uint32_t w) { return w == 0; });
  GossipSettings s;
  auto& c = s.options.config;
  c.name = config.node.name;
  c.address = gossip_address(config.gossip.bind && !bind_any ? *config.gossip.bind : self_address, port);
  c.probe_interval = std::chrono::milliseconds(config.gossip.probe_interval_ms);
  c.probe_timeout = std::chrono::milliseconds(config.gossip.probe_timeout_ms);
  c.gossip_interval = std::chrono::milliseconds(config.gossip.interval_ms);
  c.event_round_gap = c.gossip_interval / 10;  // gossip-mode invalidations: see gossip/config.h
  c.suspicion_mult = static_cast<int>(config.gossip.suspicion_mult);
  c.push_pull_interval = std::chrono::milliseconds(config.gossip.push_pull_interval_ms);
  c.rejoin_interval = std::chrono::milliseconds(config.gossip.rejoin_interval_ms);
  c.max_metadata_size = kMaxMetadataSize;
  c.metadata = metadata;
  if (config.gossip.bind) s.options.bind = gossip_address(*config.gossip.bind, port);
  s.options.keyring = std::move(keyring);
  for (const auto& p : config.peers)
    if (p.name != config.node.name) s.seeds.push_back(gossip_address(p.address, port));
  for (const std::string& text : config.gossip.seeds) {
    auto seed = parse_gossip_seed(text, port);  // validate() has checked it
    if (!seed) throw std::invalid_argument("gossip.seeds: " + seed.error());
    if (seed->address) {
      s.seeds.push_back(gossip_address(*seed->address, seed->port));
    } else {
      s.seed_names.push_back(gossip::SeedName{seed->host, seed->port});
    }
  }
  s.cluster = config.gossip.cluster;
  s.flow_grace = std::chrono::milliseconds(config.gossip.flow_grace_ms);
  return s;
}

}  // namespace mixlb
