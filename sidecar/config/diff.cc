#include "config/diff.h"

#include <algorithm>
#include <string_view>

#include "config/keys.h"

namespace mixlb {
namespace {

// The keys a running sidecar takes on a reload. Everything else is its
// identity (name, interface, address), where it keeps its state (run_dir,
// bpffs_dir, admin_socket), the data path's sizes and attach mode, or how
// gossip runs — fixed while the process lives.
constexpr std::string_view kLive[] = {
    "node.weight",           "node.log_level",        "node.log_format",    "node.on_stop",
    "node.leave_timeout_ms", "neighbours.refresh_ms", "health.kind",        "health.path",
    "health.interval_ms",    "health.timeout_ms",     "health.rise",        "health.fall",
    "gossip.flow_grace_ms",  "metrics.listen",        "conntrack.sweep_interval_ms",
    "conntrack.udp_idle_ms", "conntrack.tcp_closing_idle_ms", "conntrack.tcp_idle_ms",
};

bool live(std::string_view path) {
  return std::find(std::begin(kLive), std::end(kLive), path) != std::end(kLive);
}

bool same_vips(const std::vector<VipConfig>& a, const std::vector<VipConfig>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const VipConfig& x, const VipConfig& y) {
    return x.address == y.address && x.protocol == y.protocol && x.ports == y.ports &&
           x.nodes == y.nodes && x.health == y.health && x.health_port == y.health_port &&
           x.health_path == y.health_path;
  });
}

bool same_peers(const std::vector<PeerConfig>& a, const std::vector<PeerConfig>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const PeerConfig& x, const PeerConfig& y) {
    return x.name == y.name && x.address == y.address && x.weight == y.weight;
  });
}

}  // namespace

ConfigDiff diff_configs(const Config& running, const Config& next) {
  // The accessors take a Config&: compare copies.
  Config a = running, b = next;
  ConfigDiff d;
  for (const KeySpec& k : config_keys()) {
    bool changed = false;
    switch (k.type) {
      case KeyType::kString: changed = k.string(a) != k.string(b); break;
      case KeyType::kInteger: changed = k.integer(a) != k.integer(b); break;
      case KeyType::kBoolean: changed = k.boolean(a) != k.boolean(b); break;
      case KeyType::kAddress: changed = k.address(a) != k.address(b); break;
      case KeyType::kChoice: changed = k.chosen(a) != k.chosen(b); break;
      case KeyType::kStrings: changed = k.strings(a) != k.strings(b); break;
    }
    if (!changed) continue;
    (live(k.path) ? d.live : d.restart).emplace_back(k.path);
    if (k.section() == "health") d.health = true;
    if (k.path == "metrics.listen") d.metrics = true;
    if (k.path == "node.log_level" || k.path == "node.log_format") d.logging = true;
  }
  if (!same_vips(running.vips, next.vips)) {
    d.vips = true;
    d.live.emplace_back("vip");
  }
  if (!same_peers(running.peers, next.peers)) {
    // Without gossip the peer list is the member set, rebuilt live. With
    // gossip it is the seed list the transport joined through.
    d.peers = true;
    (running.gossip.enabled ? d.restart : d.live).emplace_back("peer");
  }
  return d;
}

}  // namespace mixlb
