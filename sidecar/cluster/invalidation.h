#pragma once
// Connection-table invalidations between nodes: the message and the rules a
// receiver applies to it. The transports (gossip user events, a multicast
// group, the segment's broadcast address, unicast to the one peer that
// forwarded the flow) live in sidecar/invalidator.h; this file knows nothing
// of sockets, keys or maps, so all of it is unit-tested.
//
// A message is one sender's batch of closed flows. In the UDP modes it is
// sealed by the cluster keyring (under its own associated data, so neither a
// gossip packet nor an invalidation can be replayed as the other); in gossip
// mode the gossip layer seals it. The plaintext, all integers big-endian:
//
//   +------+--------+----------+---------+------------+-------+-----------+
//   | 0x49 | sender | sequence | sent_us | closed_us  | count | flows ... |
//   | u8   | u32    | u64      | i64     | i64        | u16   |           |
//   +------+--------+----------+---------+------------+-------+-----------+
//   one flow: family (4 or 6), protocol, source port, VIP port (network
//   order as on the wire), client address, VIP address (4 or 16 bytes each)
//
//   sender     the node id (node_id.h) of the node that served the flows;
//              a receiver deletes an entry only while it points there
//   sequence   starts at the sender's clock in microseconds when it starts
//              and grows by one per message, so a restarted sender goes on
//              above everything it sent before
//   sent_us    the sender's clock (Unix time, µs) when it sent the message
//   closed_us  the close time of the batch's oldest flow (Unix time, µs):
//              receivers report the latency from close to delete with it
//
// Replays: a receiver keeps, per sender, the highest sequence seen and a
// window of the 64 below it (as IPsec does); a sequence seen already or
// below the window is refused, and so is a message whose sent_us is further
// from the receiver's clock than the allowed age, which covers a receiver
// that restarted and forgot its windows. In gossip mode the gossip layer
// delivers each event once (it remembers the ids for 10 minutes) and in no
// particular order, so only the age is checked there.
#include <chrono>
#include <cstdint>
#include <expected>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernel/abi.h"

namespace mixlb {

constexpr std::uint8_t kInvalidationMagic = 0x49;  // 'I'
constexpr std::size_t kInvalidationHeaderSize = 1 + 4 + 8 + 8 + 8 + 2;

struct InvalidationBatch {
  std::uint32_t sender = 0;
  std::uint64_t sequence = 0;
  std::int64_t sent_us = 0;
  std::int64_t closed_us = 0;
  std::vector<mixlb_flow_key> flows;
};

// Bytes one flow takes in a message: 14 for IPv4, 38 for IPv6.
std::size_t encoded_flow_size(const mixlb_flow_key& flow);
std::vector<std::uint8_t> encode_invalidations(const InvalidationBatch& batch);
// The error says what is wrong and at which byte.
std::expected<InvalidationBatch, std::string> decode_invalidations(
    std::span<const std::uint8_t> bytes);

// Microseconds of Unix time now; the clock messages carry.
std::int64_t unix_now_us();

// The replay window of each sender (see above).
class ReplayGuard {
 public:
  enum class Verdict { kFresh, kReplayed, kStale };
  explicit ReplayGuard(std::chrono::milliseconds max_age) : max_age_us_(max_age.count() * 1000) {}

  // Judges one message and, when it is fresh, records its sequence.
  Verdict check(std::uint32_t sender, std::uint64_t sequence, std::int64_t sent_us,
                std::int64_t now_us);
  // Judges its age alone (kFresh or kStale), for messages whose duplicates
  // another layer refuses: gossip user events, deduplicated by (origin,
  // sequence) and arriving out of order by many more than the window, as
  // an epidemic delivers them.
  Verdict check_age(std::int64_t sent_us, std::int64_t now_us) const {
    const std::int64_t age = now_us - sent_us;
    return age > max_age_us_ || -age > max_age_us_ ? Verdict::kStale : Verdict::kFresh;
  }
  // A sender that left the cluster: its window goes.
  void forget(std::uint32_t sender) { windows_.erase(sender); }
  std::size_t senders() const { return windows_.size(); }

 private:
  struct Window {
    std::uint64_t top = 0;   // the highest sequence seen
    std::uint64_t bits = 0;  // bit i: top - i was seen (bit 0 is top)
  };
  std::int64_t max_age_us_;
  std::unordered_map<std::uint32_t, Window> windows_;
};

}  // namespace mixlb
