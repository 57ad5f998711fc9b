#pragma once
// Where the configuration meets the rooms: each room takes small settings
// types of its own (kernel/ never sees Config), and these functions derive
// them from a validated Config, in one place.
#include <span>
#include <vector>

#include "cluster/cluster_sync.h"
#include "config/config.h"

namespace mixlb {

// One entry per (address, port) of the configured VIPs, in configuration order.
std::vector<VipEntry> expand_vips(std::span<const VipConfig> vips);

}  // namespace mixlb
