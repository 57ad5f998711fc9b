#pragma once
// FlowOracle answers the admin command `which` ("which node would serve this
// flow?") by running the flow's first packet through the dry-run program
// against the live maps, so the answer is the data path's own, not a model
// of it that could drift; it is its own type so the datapath tests drive the
// same code as the daemon.
#include <cstdint>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include "cluster/cluster_sync.h"
#include "kernel/datapath.h"
#include "kernel/netlink.h"

namespace mixlb {

// The flow a `which` request asks about (ports in host byte order).
struct ProbeFlow {
  std::uint8_t protocol = 6;  // IPPROTO_TCP or IPPROTO_UDP
  Address src;
  std::uint16_t sport = 0;
  Address vip;
  std::uint16_t vport = 0;
};

// Reads the arguments of `which`: {"proto":"tcp"|"udp", "src":ADDRESS,
// "sport":PORT, "vip":ADDRESS, "vport":PORT}. Throws std::invalid_argument naming the
// argument and what is wrong with it (unknown or missing key, bad address,
// port outside 1..65535, src and vip of different families).
ProbeFlow parse_which_args(const nlohmann::json& args);

// The flow's first packet as it would arrive at the node: Ethernet, IPv4 or
// IPv6, then a TCP SYN or an empty UDP datagram, every checksum valid.
std::vector<std::uint8_t> probe_frame(const ProbeFlow& flow, const MacAddress& src_mac,
                                      const MacAddress& dst_mac);

// The source MAC of the frames `which` sends through the dry run: the first
// of 02:00:00:00:00:01, :02, ... (locally administered, so no real NIC's)
// that is not in the peer-MAC map, because a frame from a peer's MAC is
// delivered locally without balancing and would not show the decision.
DpResult<MacAddress> probe_source_mac(const DatapathMaps& maps);

// Answers `which` with a dry-run XdpProgram that shares the live program's
// maps: the decision comes from the same code, tables and connection table
// that serve traffic, and the dry run changes none of them.
class FlowOracle {
 public:
  // `ifindex` is where the probe arrives (the uplink, so bpf_fib_lookup sees
  // what a real packet would); `node_mac` is its destination MAC.
  FlowOracle(XdpProgram& dry_run, int ifindex, const MacAddress& node_mac);

  // {"flow":{proto,src,sport,dst,dport}, "vip":LABEL|null, "node":NAME|null,
  //  "node_id":N, "self":BOOL, "verdict":"pass"|"tx"|"redirect"|"drop"|"aborted",
  //  "drop_reason":NAME (dropped only), "from_conntrack":BOOL}. Names come
  // from `members` and `vips` (ids through `sync`).
  nlohmann::json which(const ProbeFlow& flow, std::span<const Member> members,
                       std::span<const VipEntry> vips, const ClusterSync& sync);

 private:
  XdpProgram& dry_run_;
  int ifindex_;
  MacAddress node_mac_;
};

}  // namespace mixlb
