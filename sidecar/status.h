#pragma once
// What `mixlbctl status`, `stats` and `members` answer, built from the
// daemon's parts into the result types of admin/results.h. Each function
// reads what it is given; none changes anything, so the daemon only decides
// what to pass.
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "admin/results.h"
#include "cluster/cluster_sync.h"
#include "cluster/membership.h"
#include "cluster/neighbour_keeper.h"
#include "kernel/datapath.h"
#include "transport.h"

namespace mixlb {

struct NodeCountersView {
  std::string_view node;
  const DatapathMaps& maps;
  const ClusterSync& sync;
  std::span<const VipEntry> table_vips;  // the VIPs as the tables were built
  std::span<const PeerState> peers;      // this node first
};

// Counters: the global ones, and per VIP its totals and its (VIP, node) row.
// Throws std::runtime_error when a map cannot be read.
StatsResult stats_result(const NodeCountersView& view);

// The node table of status: every member with its neighbour state.
std::vector<NodeRow> node_rows(std::span<const PeerState> peers);

struct MembersView {
  std::string_view node;
  std::string_view cluster;
  std::string gossip_address;
  const Membership& membership;
  // The transport's own view, or why there is none.
  const std::optional<gossip::TransportSnapshot>& snapshot;
  std::string snapshot_error;
};

// `members`: every member gossip knows, whether it is in this node's tables
// (or departed: kept for its flows, and until when), with the gossip
// counters of this node.
MembersResult members_result(const MembersView& view);

}  // namespace mixlb
