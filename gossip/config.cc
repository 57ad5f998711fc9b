// Configuration checks and the size-scaled formulas of the protocol.
#include "config.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "keyring.h"

namespace mixlb::gossip {
namespace {

void require(bool ok, const char* what) {
  if (!ok) throw std::invalid_argument(std::string("gossip config: ") + what);
}

}  // namespace

void validate(const Config& c) {
  require(!c.name.empty() && c.name.size() <= kMaxNameSize, "name must be 1..255 bytes");
  require(c.address.port != 0, "address needs a port");
  require(c.metadata.size() <= c.max_metadata_size, "metadata exceeds max_metadata_size");
  require(c.max_metadata_size <= 60000, "max_metadata_size must be at most 60000");
  require(c.probe_interval > Duration::zero(), "probe_interval must be positive");
  require(c.probe_timeout > Duration::zero() && c.probe_timeout < c.probe_interval,
          "probe_timeout must be positive and shorter than probe_interval");
  require(c.indirect_checks >= 0, "indirect_checks must not be negative");
  require(c.suspicion_mult >= 1, "suspicion_mult must be at least 1");
  require(c.suspicion_max_timeout_mult >= 1, "suspicion_max_timeout_mult must be at least 1");
  require(c.suspicion_confirmations >= 0, "suspicion_confirmations must not be negative");
  require(c.awareness_max_multiplier >= 1, "awareness_max_multiplier must be at least 1");
  require(c.retransmit_mult >= 1, "retransmit_mult must be at least 1");
  require(c.event_retransmit_mult >= 1, "event_retransmit_mult must be at least 1");
  require(c.gossip_interval > Duration::zero(), "gossip_interval must be positive");
  require(c.gossip_nodes >= 0, "gossip_nodes must not be negative");
  require(c.event_burst_packets >= 0, "event_burst_packets must not be negative");
  require(c.event_round_gap >= Duration::zero(), "event_round_gap must not be negative");
  require(c.max_queued_events >= 1, "max_queued_events must be at least 1");
  require(c.packet_size >= 512 && c.packet_size <= 65000, "packet_size must be 512..65000");
  require(c.membership_share > 0 && c.membership_share < 1, "membership_share must be in (0, 1)");
  require(c.push_pull_interval > Duration::zero(), "push_pull_interval must be positive");
  require(c.push_pull_scale_nodes >= 1, "push_pull_scale_nodes must be at least 1");
  require(c.rejoin_interval > Duration::zero(), "rejoin_interval must be positive");
  require(c.stream_timeout > Duration::zero(), "stream_timeout must be positive");
  require(c.key_request_timeout > Duration::zero(), "key_request_timeout must be positive");
  require(c.key_request_retry > Duration::zero(), "key_request_retry must be positive");
  // A user event of the largest size, from an origin with the longest name,
  // must fit in the user-event share of a gossip packet: events are never
  // left to state sync.
  const std::size_t room = c.packet_size - kEnvelopeOverhead - 1;
  const auto event_share =
      static_cast<std::size_t>(static_cast<double>(room) * (1 - c.membership_share));
  require(kMessageHeaderSize + 1 + kMaxNameSize + 8 + 2 + c.max_event_payload <= event_share,
          "max_event_payload does not fit the user-event share of a packet");
}

int retransmit_limit(const Config& c, std::size_t n) {
  const double scale = std::ceil(std::log10(static_cast<double>(n) + 1));
  return std::max(1, c.retransmit_mult * static_cast<int>(scale));
}

int event_retransmit_limit(const Config& c, std::size_t n) {
  const double scale = std::ceil(std::log10(static_cast<double>(n) + 1));
  return std::max(1, c.event_retransmit_mult * static_cast<int>(scale));
}

Duration suspicion_min_timeout(const Config& c, std::size_t n) {
  const double scale = std::max(1.0, std::log10(std::max(1.0, static_cast<double>(n))));
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(c.probe_interval).count();
  return std::chrono::milliseconds(
      static_cast<std::int64_t>(c.suspicion_mult * scale * static_cast<double>(ms)));
}

Duration push_pull_period(const Config& c, std::size_t n) {
  // In real numbers, so the period grows with every member rather than in
  // steps of push_pull_scale_nodes (integer division doubled it at once
  // from 63 members to 64).
  const double scale =
      std::max(1.0, static_cast<double>(n) / static_cast<double>(c.push_pull_scale_nodes));
  return std::chrono::duration_cast<Duration>(c.push_pull_interval * scale);
}

}  // namespace mixlb::gossip
