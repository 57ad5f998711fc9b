#include "settings.h"

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

}  // namespace mixlb
