#pragma once
// ClusterSync makes the data path's maps match a member set and a VIP list:
// it writes the node map, builds each VIP's Maglev table from the members and
// publishes it into the inactive half before flipping, and removes VIPs and
// nodes that are gone — in that order, so no packet ever reads a table that
// names a node the node map lacks. It is the only writer of the maps: the
// peer MACs (frames from them were balanced already) go through it too, so
// one object decides what the data path sees and when.
//
// VIP ids index the stats and the table array. They are kept stable: a VIP
// found in pinned maps (a restarted sidecar) keeps its id, a new VIP takes the
// lowest free one and starts with zeroed counters.
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kernel/address.h"
#include "kernel/datapath.h"
#include "kernel/netlink.h"

namespace mixlb {

struct Member {
  std::string name;
  std::uint32_t id = 0;
  Address address;
  std::uint32_t weight = 1;  // 0 = drained: no new flows
  bool self = false;         // this node: stats slot 0
  // Dead or left, within the flow grace period: in the node map so the
  // connections pinned to it are still forwarded there, in no table.
  bool departed = false;
};

struct VipEntry {
  mixlb_vip_key key{};
  std::string label;                 // "10.100.0.1:80/tcp", "10.100.0.1:*/udp"
  // The names of the nodes serving it; nullopt = every member. An empty set
  // (nobody serves it) publishes a table that drops new flows.
  std::optional<std::vector<std::string>> serving;
};

mixlb_vip_key make_vip_key(const Address& address, std::uint16_t port, std::uint8_t protocol);
std::string vip_label(const mixlb_vip_key& key);

struct VipKeyLess {
  bool operator()(const mixlb_vip_key& a, const mixlb_vip_key& b) const;
};

class ClusterSync {
 public:
  ClusterSync(DatapathMaps& maps, std::uint32_t max_vips);

  DpResult<void> apply(std::span<const Member> members, std::span<const VipEntry> vips);

  // The MAC frames from a member arrive with (its uplink's, as the neighbour
  // table resolves it): they are delivered here, never balanced again. A
  // node has one MAC; a new one replaces the old. apply() forgets the MAC of
  // a node that is no longer a member. Before the first apply() the MACs a
  // predecessor pinned are kept as they are, so a restart never has a
  // moment in which a peer's forwarded frames go unrecognised.
  DpResult<void> set_peer_mac(std::uint32_t node_id, const MacAddress& mac);
  DpResult<void> forget_peer_mac(std::uint32_t node_id);
  std::optional<MacAddress> peer_mac(std::uint32_t node_id) const;

  // The id of a published VIP (nullopt if it is not published).
  std::optional<std::uint32_t> vip_id(const mixlb_vip_key& key) const;
  // How many table publications (half flips) apply() has made so far.
  std::uint64_t publications() const { return publications_; }
  // The column of a member in the per-(VIP, node) counters.
  std::optional<std::uint32_t> stats_slot(std::uint32_t node_id) const;
  // The backends a VIP's live table was built from (names, in name order).
  std::vector<std::string> backends(const mixlb_vip_key& key) const;

 private:
  DpResult<void> adopt();
  DpResult<std::uint32_t> allocate_id();
  DpResult<void> write_nodes(std::span<const Member> members);

  DatapathMaps& maps_;
  std::uint32_t max_vips_;
  bool adopted_ = false;
  std::map<mixlb_vip_key, std::uint32_t, VipKeyLess> ids_;
  std::map<mixlb_vip_key, std::vector<std::uint32_t>, VipKeyLess> published_;
  std::map<mixlb_vip_key, std::vector<std::string>, VipKeyLess> backends_;
  std::map<std::uint32_t, std::uint32_t> slots_;  // node id -> stats slot
  std::map<std::uint32_t, MacAddress> macs_;      // node id -> peer MAC
  std::uint64_t publications_ = 0;
};

}  // namespace mixlb
