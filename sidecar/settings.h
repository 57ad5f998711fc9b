#pragma once
// Where the configuration meets the rooms: each room takes small settings
// types of its own (kernel/ never sees Config), and these functions derive
// them from a validated Config, in one place.
#include <optional>
#include <span>
#include <vector>

#include "cluster/cluster_sync.h"
#include "config/config.h"
#include "gossip_bridge.h"
#include "health.h"
#include "kernel/datapath.h"
#include "kernel/host_setup.h"
#include "keyring.h"

namespace mixlb {

// One entry per (address, port) of the configured VIPs, in configuration order.
std::vector<VipEntry> expand_vips(std::span<const VipConfig> vips);

// The data path's sizes and pin directory (<bpffs_dir>/<node>).
DatapathSettings datapath_settings(const Config& config);

// One check per service (VIP port) that has one, services with the same
// target sharing it (health.h).
std::vector<ServiceCheck> service_checks(const Config& config);

// What the host needs: arp_ignore/arp_announce so the VIP on lo is neither
// answered for nor used as a source on the uplink; forwarding on the uplink
// for bpf_fib_lookup (IPv6 too when `v6_nodes`); the VIP addresses on lo.
HostPlan host_plan(const Config& config, int lo_ifindex, bool v6_nodes);

// This node (first, self) and, without gossip, its static peers.
std::vector<Member> static_members(const Config& config, const Address& self_address);

// The gossip transport's settings: the address members reach this node at
// (its node address, or gossip.bind when that is a specific address), the
// seeds (the peer list at the gossip port, then gossip.seeds: addresses as
// seeds, host names as seed names), the keyring when there is one.
GossipSettings gossip_settings(const Config& config, const Address& self_address,
                               const std::vector<std::uint8_t>& metadata,
                               std::optional<gossip::Keyring> keyring);

// An IPv4 or IPv6 sidecar address as the gossip layer writes it.
gossip::Address gossip_address(const Address& address, std::uint16_t port);

}  // namespace mixlb
