#include "admin/rates.h"

#include <algorithm>

namespace mixlb {

void CounterRates::record(Clock::time_point at, Sample sample) {
  previous_ = std::move(last_);
  last_.emplace(at, std::move(sample));
}

std::optional<CounterRates::Clock::duration> CounterRates::interval() const {
  if (!previous_ || !last_ || last_->first <= previous_->first) return std::nullopt;
  return last_->first - previous_->first;
}

std::optional<PacketRate> CounterRates::rate(const Key& key) const {
  const auto span = interval();
  if (!span) return std::nullopt;
  const auto before = previous_->second.find(key);
  const auto after = last_->second.find(key);
  if (before == previous_->second.end() || after == last_->second.end()) return std::nullopt;
  const Counters& a = before->second;
  const Counters& b = after->second;
  if (b.pkts < a.pkts || b.bytes < a.bytes) return std::nullopt;
  const double seconds = std::chrono::duration<double>(*span).count();
  return PacketRate{static_cast<double>(b.pkts - a.pkts) / seconds,
                    static_cast<double>(b.bytes - a.bytes) / seconds};
}

CounterRates::Sample rate_sample(const StatsResult& stats) {
  CounterRates::Sample sample;
  for (const auto& vip : stats.vips) {
    if (!vip.counters) continue;
    const VipPackets& c = *vip.counters;
    sample[{vip.vip, std::string(kVipTotal)}] = {c.local_pkts + c.fwd_pkts,
                                                 c.local_bytes + c.fwd_bytes};
    sample[{vip.vip, std::string(kFromPeers)}] = {c.from_peer_pkts, c.from_peer_bytes};
    if (!vip.per_node) continue;
    for (const auto& node : *vip.per_node) sample[{vip.vip, node.name}] = {node.pkts, node.bytes};
  }
  return sample;
}

VipsResult vips_result(const StatsResult& stats, const CounterRates& rates) {
  VipsResult result;
  result.node = stats.node;
  if (const auto span = rates.interval())
    result.interval_s = std::chrono::duration<double>(*span).count();
  for (const auto& vip : stats.vips) {
    VipTraffic traffic;
    traffic.vip = vip.vip;
    traffic.vip_id = vip.vip_id;
    if (vip.counters) {
      const VipPackets& c = *vip.counters;
      traffic.pkts = c.local_pkts + c.fwd_pkts;
      traffic.bytes = c.local_bytes + c.fwd_bytes;
      traffic.from_peer_pkts = c.from_peer_pkts;
      traffic.from_peer_bytes = c.from_peer_bytes;
      for (const auto& [reason, count] : c.drops) traffic.dropped += count;
      traffic.rate = rates.rate({vip.vip, std::string(kVipTotal)});
      traffic.from_peer_rate = rates.rate({vip.vip, std::string(kFromPeers)});
    }
    auto backend = [&](const std::string& name, bool self) {
      VipBackend b;
      b.name = name;
      b.self = self;
      if (vip.weights) {
        if (const auto w = vip.weights->find(name); w != vip.weights->end()) b.weight = w->second;
      }
      b.in_table = std::find(vip.backends.begin(), vip.backends.end(), name) != vip.backends.end();
      return b;
    };
    if (vip.per_node) {
      // Every serving member, and any other one that still gets flows.
      for (const auto& node : *vip.per_node) {
        VipBackend b = backend(node.name, node.self);
        b.pkts = node.pkts;
        b.bytes = node.bytes;
        b.rate = rates.rate({vip.vip, node.name});
        traffic.backends.push_back(std::move(b));
      }
    } else {
      // No table out yet: the backends it will have, nothing counted.
      for (const auto& name : vip.backends) traffic.backends.push_back(backend(name, false));
    }
    result.vips.push_back(std::move(traffic));
  }
  return result;
}

}  // namespace mixlb
