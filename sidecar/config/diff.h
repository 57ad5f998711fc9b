#pragma once
// What a reload changes: the difference between the running configuration
// and a new, already validated one, sorted into what the sidecar applies
// while it runs and what only a restart can change (the node's identity, its
// interface, the data path's sizes, the sockets it holds). No I/O: the
// daemon applies the live part, and reports both parts to the operator.
#include <string>
#include <vector>

#include "config/config.h"

namespace mixlb {

struct ConfigDiff {
  // Key paths (or list names: "vip", "peer") whose value changed and that
  // the sidecar applies live, in key-table order.
  std::vector<std::string> live;
  // Changed keys that need a restart to take effect; the running sidecar
  // keeps the old value.
  std::vector<std::string> restart;

  bool vips = false;     // the [[vip]] list changed
  bool peers = false;    // the [[peer]] list changed
  bool health = false;   // a [health] key changed: the app check starts over
  bool metrics = false;  // metrics.listen changed: the endpoint moves
  bool logging = false;  // node.log_level or node.log_format changed

  bool empty() const { return live.empty() && restart.empty(); }
};

ConfigDiff diff_configs(const Config& running, const Config& next);

}  // namespace mixlb
