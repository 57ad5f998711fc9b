#include "cluster/cluster_sync.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <set>

#include <spdlog/spdlog.h>

#include "cluster/maglev.h"

namespace mixlb {

mixlb_vip_key make_vip_key(const Address& address, std::uint16_t port, std::uint8_t protocol) {
  mixlb_vip_key key{};
  std::memcpy(key.addr, address.words.data(), sizeof(key.addr));
  key.port = htons(port);
  key.proto = protocol;
  key.family = static_cast<std::uint8_t>(address.is_v6() ? MIXLB_AF_INET6 : MIXLB_AF_INET);
  return key;
}

std::string vip_label(const mixlb_vip_key& key) {
  Address a;
  a.family = key.family == MIXLB_AF_INET6 ? AF_INET6 : AF_INET;
  std::memcpy(a.words.data(), key.addr, sizeof(key.addr));
  const std::string host = a.is_v6() ? "[" + a.to_string() + "]" : a.to_string();
  const char* proto = key.proto == 6 ? "tcp" : key.proto == 17 ? "udp" : "?";
  const std::string port = key.port == 0 ? "*" : std::to_string(ntohs(key.port));
  return host + ":" + port + "/" + proto;
}

bool VipKeyLess::operator()(const mixlb_vip_key& a, const mixlb_vip_key& b) const {
  return std::memcmp(&a, &b, sizeof(a)) < 0;
}

ClusterSync::ClusterSync(DatapathMaps& maps, std::uint32_t max_vips) : maps_(maps), max_vips_(max_vips) {}

std::optional<std::uint32_t> ClusterSync::stats_slot(std::uint32_t node_id) const {
  auto it = slots_.find(node_id);
  if (it == slots_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> ClusterSync::backends(const mixlb_vip_key& key) const {
  auto it = backends_.find(key);
  return it == backends_.end() ? std::vector<std::string>{} : it->second;
}

std::optional<std::uint32_t> ClusterSync::vip_id(const mixlb_vip_key& key) const {
  auto it = ids_.find(key);
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

DpResult<void> ClusterSync::adopt() {
  auto existing = maps_.vips();
  if (!existing) return std::unexpected(existing.error());
  for (const auto& [key, value] : *existing) {
    if (value.vip_id < max_vips_) ids_[key] = value.vip_id;
  }
  if (!existing->empty()) spdlog::info("adopted {} VIP(s) from pinned maps", existing->size());
  auto nodes = maps_.node_ids();
  if (!nodes) return std::unexpected(nodes.error());
  for (auto id : *nodes) {
    auto node = maps_.node(id);
    if (!node) return std::unexpected(node.error());
    if (*node && (*node)->stats_slot < maps_.max_nodes()) slots_[id] = (*node)->stats_slot;
  }
  auto macs = maps_.peer_macs();
  if (!macs) return std::unexpected(macs.error());
  for (const auto& [key, id] : *macs) {
    MacAddress mac;
    std::memcpy(mac.data(), key.addr, mac.size());
    macs_[id] = mac;
  }
  adopted_ = true;
  return {};
}

namespace {

mixlb_mac mac_key(const MacAddress& mac) {
  mixlb_mac key{};
  std::memcpy(key.addr, mac.data(), sizeof(key.addr));
  return key;
}

}  // namespace

DpResult<void> ClusterSync::set_peer_mac(std::uint32_t node_id, const MacAddress& mac) {
  if (!adopted_) {
    if (auto r = adopt(); !r) return r;
  }
  auto it = macs_.find(node_id);
  if (it != macs_.end() && it->second == mac) return {};
  if (auto r = maps_.set_peer_mac(mac_key(mac), node_id); !r) return r;
  if (it != macs_.end()) {
    if (auto r = maps_.remove_peer_mac(mac_key(it->second)); !r) return r;
    it->second = mac;
  } else {
    macs_.emplace(node_id, mac);
  }
  return {};
}

DpResult<void> ClusterSync::forget_peer_mac(std::uint32_t node_id) {
  if (!adopted_) {
    if (auto r = adopt(); !r) return r;
  }
  auto it = macs_.find(node_id);
  if (it == macs_.end()) return {};
  if (auto r = maps_.remove_peer_mac(mac_key(it->second)); !r) return r;
  macs_.erase(it);
  return {};
}

std::optional<MacAddress> ClusterSync::peer_mac(std::uint32_t node_id) const {
  auto it = macs_.find(node_id);
  if (it == macs_.end()) return std::nullopt;
  return it->second;
}

// Writes every member into the node map with a stable stats slot: this node
// has slot 0, a known member keeps its slot, a new one takes the lowest free
// slot and starts with zeroed (VIP, node) counters.
DpResult<void> ClusterSync::write_nodes(std::span<const Member> members) {
  std::set<std::uint32_t> present;
  for (const auto& m : members) present.insert(m.id);
  for (auto it = slots_.begin(); it != slots_.end();)
    it = present.contains(it->first) ? std::next(it) : slots_.erase(it);

  for (const auto& m : members) {
    std::uint32_t slot = MIXLB_SELF_STATS_SLOT;
    if (!m.self) {
      auto known = slots_.find(m.id);
      if (known != slots_.end() && known->second != MIXLB_SELF_STATS_SLOT) {
        slot = known->second;
      } else {
        std::set<std::uint32_t> used;
        for (const auto& [id, s] : slots_) used.insert(s);
        slot = 1;
        while (used.contains(slot)) ++slot;
        if (slot >= maps_.max_nodes())
          return std::unexpected(DatapathError{"allocating a stats slot for " + m.name,
                                               std::make_error_code(std::errc::no_space_on_device)});
        for (const auto& [key, vip] : ids_)
          if (auto r = maps_.reset_node_counters(vip, slot); !r) return r;
      }
    }
    slots_[m.id] = slot;
    mixlb_node node{};
    std::memcpy(node.addr, m.address.words.data(), sizeof(node.addr));
    node.family = static_cast<std::uint8_t>(m.address.is_v6() ? MIXLB_AF_INET6 : MIXLB_AF_INET);
    node.stats_slot = slot;
    if (auto r = maps_.set_node(m.id, node); !r) return r;
  }
  return {};
}

DpResult<std::uint32_t> ClusterSync::allocate_id() {
  std::set<std::uint32_t> used;
  for (const auto& [key, id] : ids_) used.insert(id);
  for (std::uint32_t id = 0; id < max_vips_; ++id)
    if (!used.contains(id)) return id;
  return std::unexpected(
      DatapathError{"allocating a VIP id", std::make_error_code(std::errc::no_space_on_device)});
}

DpResult<void> ClusterSync::apply(std::span<const Member> members, std::span<const VipEntry> vips) {
  if (!adopted_) {
    if (auto r = adopt(); !r) return r;
  }

  // 1. Nodes first: every node a new table may name is in the node map.
  if (auto r = write_nodes(members); !r) return r;
  std::set<std::uint32_t> member_ids;
  for (const auto& m : members) member_ids.insert(m.id);

  // 2. Tables: one build per distinct serving set.
  std::map<std::vector<std::string>, std::vector<std::uint32_t>> built;
  std::set<mixlb_vip_key, VipKeyLess> wanted;
  bool any_port = false;
  for (const auto& v : vips) {
    wanted.insert(v.key);
    any_port = any_port || v.key.port == 0;
    std::vector<MaglevBackend> backends;
    std::vector<std::string> names;
    for (const auto& m : members) {
      if (m.departed) continue;
      if (v.serving && std::find(v.serving->begin(), v.serving->end(), m.name) == v.serving->end())
        continue;
      backends.push_back(MaglevBackend{m.name, m.id, m.weight});
      if (m.weight > 0) names.push_back(m.name);
    }
    std::sort(names.begin(), names.end());
    std::vector<std::string> set_key;
    for (const auto& b : backends) set_key.push_back(b.name + "=" + std::to_string(b.weight));
    std::sort(set_key.begin(), set_key.end());
    auto table_it = built.find(set_key);
    if (table_it == built.end())
      table_it = built.emplace(set_key, build_maglev_table(backends, maps_.ring_size())).first;
    const auto& table = table_it->second;

    auto id_it = ids_.find(v.key);
    if (id_it == ids_.end()) {
      auto id = allocate_id();
      if (!id) return std::unexpected(id.error());
      if (auto r = maps_.reset_vip_counters(*id); !r) return r;
      id_it = ids_.emplace(v.key, *id).first;
    }
    backends_[v.key] = names;
    auto pub = published_.find(v.key);
    if (pub != published_.end() && pub->second == table) continue;
    auto half = maps_.publish_vip(v.key, id_it->second, table);
    if (!half) return std::unexpected(half.error());
    published_[v.key] = table;
    ++publications_;
    spdlog::debug("published table of {} (id {}) into half {}", v.label, id_it->second, *half);
  }
  if (auto r = maps_.set_any_port_vips(any_port); !r) return r;

  // 3. VIPs no longer configured.
  for (auto it = ids_.begin(); it != ids_.end();) {
    if (wanted.contains(it->first)) {
      ++it;
      continue;
    }
    if (auto r = maps_.remove_vip(it->first); !r) return r;
    // Its connections would otherwise keep being balanced from the table.
    auto purged = maps_.purge_conntrack(it->second);
    if (!purged) return std::unexpected(purged.error());
    spdlog::info("removed VIP {} and its {} connection(s)", vip_label(it->first), *purged);
    published_.erase(it->first);
    backends_.erase(it->first);
    it = ids_.erase(it);
  }

  // 4. Nodes no longer members, and the connections pinned to them: the
  // node cannot be reached any more, and a new connection that reuses one
  // of their 5-tuples must be balanced afresh, not sent after it.
  auto ids = maps_.node_ids();
  if (!ids) return std::unexpected(ids.error());
  for (auto id : *ids)
    if (!member_ids.contains(id)) {
      if (auto r = forget_peer_mac(id); !r) return r;
      if (auto r = maps_.remove_node(id); !r) return r;
      auto purged = maps_.purge_conntrack_to_node(id);
      if (!purged) return std::unexpected(purged.error());
      if (*purged != 0) spdlog::info("forgot {} connection(s) to node {:#010x}, no longer a member", *purged, id);
    }
  std::vector<std::uint32_t> stale_macs;
  for (const auto& [id, mac] : macs_)
    if (!member_ids.contains(id)) stale_macs.push_back(id);
  for (auto id : stale_macs)
    if (auto r = forget_peer_mac(id); !r) return r;
  return {};
}

}  // namespace mixlb
