#pragma once
// The mixlb metric families: what /metrics says about the data path, the
// tables, the node's own state and gossip.
//
// Two steps, so that the part worth testing needs no kernel. read_datapath()
// reads the counters out of the maps (the same rows `mixlbctl stats`
// shows); write_metrics() turns figures — plain values, whatever produced
// them — into families. The daemon fills MetricsFigures from its parts at
// each scrape and renders it; tests fill it by hand.
//
// Nothing here waits. Gossip figures come as a TransportSnapshot that the
// caller already has (answer_within.h awaits one from the gossip thread
// with a deadline); the connection-table census (conntrack_census.h) is
// taken by the caller too, because its cost grows with the table and the
// caller decides where and how often to pay it.
//
// Naming follows Prometheus' conventions: `mixlb_` then the subsystem,
// base units (bytes, seconds), `_total` on counters, and a label where a
// sum over it means something (packets by path, drops by reason); docs/
// metrics.md lists every family.
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "cluster/cluster_sync.h"
#include "cluster/membership.h"
#include "cluster/neighbour_keeper.h"
#include "kernel/datapath.h"
#include "metrics/conntrack_census.h"
#include "metrics/exposition.h"
#include "transport.h"

namespace mixlb::metrics {

// One VIP port as the tables were built, with its counters when it is
// published.
struct VipFigures {
  std::string vip;  // its label, "10.100.0.1:80/tcp"
  std::optional<std::uint32_t> vip_id;
  std::size_t backends = 0;  // nodes in its live table
  VipCounters counters;      // zero when unpublished
  // Every member in the node map: this node's own row (packets it served)
  // and one per peer (packets forwarded to it). A member that no longer
  // serves the VIP keeps its row at weight 0; flows the connection table
  // pins to it still go there.
  struct Node {
    std::string name;
    bool self = false;
    std::uint32_t weight = 0;  // its weight in this VIP's table, 0 when not serving
    NodeCounters counters;
  };
  std::vector<Node> nodes;
};

struct DatapathFigures {
  GlobalCounters global;
  std::vector<VipFigures> vips;
  std::map<std::uint32_t, std::string> node_names;  // node id -> name, for the census
  std::uint64_t table_publications = 0;             // ClusterSync::publications()
};

// Reads the global, per-VIP and per-(VIP, node) counters. `peers` is the
// node map as NeighbourKeeper keeps it, this node first.
DpResult<DatapathFigures> read_datapath(const DatapathMaps& maps, const ClusterSync& sync,
                                        std::span<const VipEntry> table_vips,
                                        std::span<const PeerState> peers);

// The verdict of one of this node's own health checks, by the service (VIP
// port label, "10.100.0.1:80/tcp") it decides; services sharing a check
// each get their pair.
struct ServiceHealth {
  std::string service;
  bool healthy = false;
};

// A member's app health as this node last heard it (gossip metadata).
struct AppHealth {
  std::string node;
  bool healthy = false;
};

// The app health every alive or suspect member publishes, this node's
// included (a dead member's last word is not news).
std::vector<AppHealth> app_health_of(const Membership& membership);

struct GossipFigures {
  bool enabled = false;
  // The transport's latest view; nullopt when it did not answer in time.
  std::optional<gossip::TransportSnapshot> snapshot;
};

// The connection life cycle as the sidecar keeps it: the sweeper, close
// tracking and invalidation (sidecar/invalidator.h), by counter name.
struct LifecycleFigures {
  std::uint64_t sweeps = 0;
  std::vector<std::pair<std::string, std::uint64_t>> swept;  // reason -> entries removed
  // outcome -> closes; nullopt when the kernel refused close tracking
  std::optional<std::vector<std::pair<std::string, std::uint64_t>>> closes;
  std::string invalidation_mode;  // conntrack.invalidation as it runs
  std::vector<std::pair<std::string, std::uint64_t>> invalidation;  // invalidation_counter_list()
  std::size_t latency_samples = 0;
  double latency_p50_seconds = 0, latency_p99_seconds = 0;
};

// The reuseport selector's generations (reuseport/sockets.h), one row each.
struct SocketsFigures {
  struct Generation {
    std::string service;  // "tcp 0.0.0.0:80"
    std::uint32_t number = 0;
    std::string state;  // active, starting, draining
    std::size_t sockets = 0;
    std::uint64_t selected = 0, migrated = 0, sticky = 0, fallback = 0;
    std::optional<std::size_t> udp_flows;  // UDP services only
  };
  std::vector<Generation> generations;
};

struct MetricsFigures {
  std::string node;
  std::string version;
  DatapathFigures datapath;
  // nullopt when no census was taken (the families are then left out).
  std::optional<ConntrackCensus> conntrack;
  std::optional<AttachMode> xdp_mode;  // nullopt: no XDP program on the uplink
  bool uplink_attached = false;
  std::vector<ServiceHealth> health;  // empty when nothing is checked
  std::vector<AppHealth> app_health;
  std::uint64_t table_rebuilds = 0;
  GossipFigures gossip;
  std::optional<LifecycleFigures> lifecycle;  // nullopt: left out
  std::optional<SocketsFigures> sockets;       // nullopt: no selector runs
};

void write_metrics(const MetricsFigures& figures, Exposition& out);
std::string render_metrics(const MetricsFigures& figures);

// The name of each data-path event counter's family ("mixlb_conntrack_hits_total"),
// indexed by enum mixlb_counter; exposed so a test can check that every
// counter has one.
struct EventCounterMetric {
  std::string_view name;
  std::string_view help;
};
extern const std::array<EventCounterMetric, MIXLB_CNT__MAX> kEventCounterMetrics;

// The label value of each gossip drop reason ("no_key_authenticates"),
// indexed by gossip::DropReason.
extern const std::array<std::string_view, static_cast<std::size_t>(gossip::DropReason::kCount)>
    kGossipDropReasonLabels;

}  // namespace mixlb::metrics
