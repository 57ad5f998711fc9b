#pragma once
// The send queue of the dissemination layer: messages waiting to be
// piggybacked on outgoing packets, each sent a bounded number of times.
//
// SWIM spreads membership updates by piggybacking them on the probe traffic
// it sends anyway (and on periodic gossip packets); an update needs about
// λ·log(n) transmissions to reach every member with high probability. This
// queue hands out the least-transmitted messages first, newest first among
// equals, so a fresh update overtakes the tail of an old one, and retires a
// message once it has been sent `limit` times. A message queued under a key
// replaces the one queued under the same key (a newer update about the same
// member makes the older one pointless).
//
// It holds framed messages (codec.h) and knows nothing of their meaning; the
// protocol core keeps one queue for membership updates and one for user
// events, and gives each its own share of every packet.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "codec.h"

namespace mixlb::gossip {

class BroadcastQueue {
 public:
  // Queues `framed` under `key`, replacing any message with the same key.
  void push(const std::string& key, Bytes framed);
  // Drops the message queued under `key`, if any.
  void erase(const std::string& key);

  // Appends queued messages that fit into `budget` bytes to `out`, fewest
  // transmissions first, counting one transmission for each; messages that
  // reach `limit` transmissions are retired. Returns the bytes appended.
  // `packet` identifies the packet being filled (packet ids grow): a message
  // already put into a packet numbered `since` or later is skipped, so by
  // default one put into this packet by an earlier call is not put in again,
  // and with `since` the first packet of a gossip round, a message goes out
  // at most once in the round's extra packets.
  std::size_t fill(Bytes& out, std::size_t budget, int limit, std::uint64_t packet = 0,
                   std::uint64_t since = 0);

  // Transmissions so far of the message under `key`; -1 when none is queued.
  int transmits(const std::string& key) const;
  bool contains(const std::string& key) const;
  std::size_t size() const { return by_key_.size(); }
  bool empty() const { return by_key_.empty(); }
  void clear();

  // Visits the queued messages, in sending order.
  void for_each(const std::function<void(const std::string& key, ByteView framed)>& visit) const;

 private:
  struct Order {
    int transmits;
    std::uint64_t age;  // smaller is newer: ages count down
    friend bool operator<(const Order& a, const Order& b) {
      return a.transmits != b.transmits ? a.transmits < b.transmits : a.age < b.age;
    }
  };
  struct Item {
    std::string key;
    Bytes framed;
    Order order;
    std::uint64_t last_packet = 0;
  };
  // Hashes std::string and std::string_view alike, so lookups need no copy.
  struct KeyHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view key) const noexcept {
      return std::hash<std::string_view>{}(key);
    }
  };

  // Items live in `by_key_` (stable addresses); `queue_` orders pointers to
  // them, so counting a transmission touches no hash table.
  std::map<Order, Item*> queue_;
  std::unordered_map<std::string, std::unique_ptr<Item>, KeyHash, std::equal_to<>> by_key_;
  std::uint64_t next_age_ = UINT64_MAX;
  std::size_t smallest_ = SIZE_MAX;  // a lower bound of the queued sizes, to stop scans early
};

}  // namespace mixlb::gossip
