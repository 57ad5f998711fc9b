#pragma once
// The protocol's parameters and the formulas derived from them.
//
// Defaults follow memberlist's LAN configuration (hashicorp/memberlist,
// DefaultLANConfig), the reference the SWIM + Lifeguard papers were
// productised as, except where mixlb's targets asked for a change; each such
// change is marked and explained next to its field and in docs/gossip.md.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "address.h"
#include "codec.h"

namespace mixlb::gossip {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Duration = std::chrono::nanoseconds;

using namespace std::chrono_literals;

struct Config {
  // This member's identity: unique in the cluster, 1..255 bytes.
  std::string name;
  // The endpoint other members reach this one at (advertised in alive messages).
  Address address;
  // Opaque bytes published with this member (mixlb: serving state, weight, MAC).
  Bytes metadata;

  // --- failure detection (SWIM) ---
  // One member is probed per interval; a direct ping waits probe_timeout for
  // its ack, then `indirect_checks` members are asked to ping it for us until
  // the (health-scaled) interval ends. memberlist asks 3 helpers; mixlb asks
  // 5: at 10 % loss a healthy member then fails a probe 8 times less often
  // (0.19 × 0.34^5 instead of 0.19 × 0.34^3), and every false suspicion costs
  // the whole cluster a suspect and a refutation broadcast — at 1000 members
  // that was 6.3 KB/s per member with 3 helpers, 1.6 KB/s with 5.
  Duration probe_interval = 1s;
  Duration probe_timeout = 500ms;
  int indirect_checks = 5;
  // When the direct ping times out, ping the target directly once more along
  // with the ping-reqs. memberlist tries TCP at that point; mixlb keeps to
  // UDP. At 10 % loss this makes a false suspicion 5 times rarer again.
  bool retry_direct_ping = true;

  // --- suspicion (Lifeguard) ---
  // A suspect is declared dead when its suspicion timer runs out. The timer
  // starts at suspicion_max_timeout_mult × the minimum and shrinks toward the
  // minimum, suspicion_mult × max(1, log10(n)) × probe_interval, as
  // independent accusers of the same member are heard; after
  // suspicion_confirmations of them it is at the minimum.
  // suspicion_max_timeout_mult = 1 turns the shrinking off (classic SWIM: a
  // fixed timeout). memberlist uses suspicion_mult 4 and ties the
  // confirmations to it (mult - 2 = 2); mixlb keeps the 2 confirmations but
  // lowers the multiplier to 3, which is what brings the 1000-member crash
  // detection under 15 s at 10 % loss (docs/gossip.md).
  int suspicion_mult = 3;
  int suspicion_max_timeout_mult = 6;
  int suspicion_confirmations = 2;

  // --- local health (Lifeguard) ---
  // This node's probe interval and ack wait are scaled by (score + 1), the
  // score rising when this node misses acks and nacks or has to refute a
  // suspicion of itself, and falling with each successful probe; it stays
  // below awareness_max_multiplier. 1 turns local health off.
  int awareness_max_multiplier = 8;

  // --- dissemination ---
  // An update is piggybacked at most retransmit_mult × ceil(log10(n + 1))
  // times. Every gossip_interval, pending updates also go to gossip_nodes
  // random members (nothing is sent when nothing is pending).
  int retransmit_mult = 4;
  // User events get more transmissions than membership updates (mixlb's
  // choice): a missed membership update is repaired by refutation or the
  // next push-pull, a missed user event by nothing.
  int event_retransmit_mult = 8;
  Duration gossip_interval = 200ms;
  int gossip_nodes = 3;
  // User events that the round's gossip_nodes packets had no room for go
  // out in up to this many more packets per round, each to a random member,
  // until every queued event has been sent once in the round (mixlb's
  // choice: memberlist sends one packet per target, so a burst of events
  // drains at one packet's share per target and interval). Each of these
  // packets still gives membership updates their share first. 0: none.
  int event_burst_packets = 16;
  // A user event of this node starts a gossip round at once, unless one ran
  // less than this long ago (then it starts when the gap is over), so the
  // first members hear it within about this time rather than up to a
  // gossip_interval later (mixlb's choice: memberlist waits for the next
  // round). The events queued meanwhile share the round. Zero: never.
  Duration event_round_gap = 20ms;
  // Dead members still receive gossip for this long (so they can learn of
  // it and refute), and are forgotten after it.
  Duration gossip_to_the_dead = 30s;
  // The largest datagram, envelope included; memberlist's UDPBufferSize.
  std::size_t packet_size = 1400;
  // Of the room a packet has left for piggybacked messages, the share
  // guaranteed to membership updates; user events are guaranteed the rest.
  // Room one kind leaves unused goes to the other.
  double membership_share = 0.5;

  // --- state sync ---
  // Full push-pull with one random member every push_pull_interval ×
  // max(1, n / push_pull_scale_nodes), n / push_pull_scale_nodes a real
  // number (the period grows with each member, not in steps). memberlist
  // scales by ceil(log2(n / 32)) + 1; mixlb scales linearly, so the per-node
  // cost of state sync stays flat as the cluster grows (see docs/gossip.md
  // for the bandwidth it bought).
  Duration push_pull_interval = 30s;
  std::size_t push_pull_scale_nodes = 32;
  // Seeds that are not alive members are re-joined this often, so two sides
  // of a healed partition find each other again.
  Duration rejoin_interval = 30s;
  // A stream request not answered by the transport in this time has failed.
  Duration stream_timeout = 10s;

  // --- bounds ---
  std::size_t max_metadata_size = 512;
  std::size_t max_event_payload = 256;
  // User events queued for spreading, this node's and those it relays. A
  // new event of this node beyond it is refused (send_event: kQueueFull),
  // one from another member is delivered but not relayed; both are counted
  // (Stats::events_dropped).
  std::size_t max_queued_events = 4096;
  // Received user-event ids are remembered this long for deduplication, and
  // so are the key requests this node has applied (with its answer).
  Duration event_dedup_window = 10min;

  // --- key management (mixlb's; Serf's key queries) ---
  // A key request's origin collects answers until every member that was
  // alive when it started has answered (or died), or until this timeout.
  // Serf's query timeout is gossip_interval × 16 × ceil(log10(n + 1)): 6.4 s
  // for 10 to 99 members, 9.6 s for 100 to 999; mixlb waits a fixed 10 s but
  // re-asks (below), so a lost answer costs a retry interval, not the whole
  // timeout.
  Duration key_request_timeout = 10s;
  // The origin sends the request again, directly, to the members whose
  // answer it lacks, this often.
  Duration key_request_retry = 1s;
};

// Throws std::invalid_argument naming the offending field.
void validate(const Config& config);

// Transmissions per update (per user event) for a cluster of n members.
int retransmit_limit(const Config& config, std::size_t n);
int event_retransmit_limit(const Config& config, std::size_t n);
// The minimum suspicion timeout for a cluster of n members.
Duration suspicion_min_timeout(const Config& config, std::size_t n);
// The push-pull period for a cluster of n members.
Duration push_pull_period(const Config& config, std::size_t n);

}  // namespace mixlb::gossip
