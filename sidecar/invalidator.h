#pragma once
// The Invalidator carries connection-table invalidations between nodes:
// when a connection served here closes (kernel/close_tracker.h), the nodes
// that forwarded it here still hold its entry; this tells them to delete it,
// and applies what the other nodes tell this one. The message and the
// receiver's rules are in cluster/invalidation.h.
//
// One mode per cluster (conntrack.invalidation; docs/configuration.md has
// the trade-offs):
//   gossip     user events through the gossip channel: no port of its own,
//              sealed by the gossip layer, spread epidemically at the gossip
//              interval (each event sent event_retransmit_mult × log n times
//              by every node, membership updates keeping their share of every
//              packet; the gossip layer's event_burst_packets and
//              max_queued_events bound its rate and its queue)
//   multicast  one datagram per batch to a group on the uplink, every node
//              a member of it
//   broadcast  one datagram per batch to the segment's broadcast address
//   targeted   unicast to the one peer that balanced the flow here (the data
//              path records it from the peer's SYN, kernel/close_tracker.h);
//              a flow whose origin is unknown goes to every peer
// The UDP modes seal every datagram with the cluster keyring under their own
// associated data ("<cluster>/invalidate"); without a keyring (gossip.insecure)
// they travel in the clear.
//
// A flow that this node both received from the router and served (its entry
// here was the one the close deleted, no peer recorded) was never forwarded,
// nor was a connection this node made to its own VIP (a health check):
// nothing is sent for them.
//
// Batching: the closes of one ring-buffer drain are queued, and one flush
// posted behind them sends them in as few datagrams as fit (1,400 bytes),
// or user events (gossip_payload).
// Everything runs on the io_context's thread.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <unordered_map>
#include <vector>

#include "cluster/invalidation.h"
#include "config/config.h"
#include "keyring.h"  // gossip/keyring.h
#include "kernel/abi.h"
#include "kernel/ct_invalidate.h"
#include "kernel/datapath.h"

namespace mixlb {

struct InvalidatorSettings {
  InvalidationMode mode = InvalidationMode::kTargeted;
  std::uint32_t self_id = 0;
  Address self_address;  // where the socket binds; the peers' addresses come from the node map
  std::uint16_t port = 9066;
  Address group;      // multicast
  Address broadcast;  // broadcast: the segment's broadcast address
  std::chrono::milliseconds max_age{30000};
  std::string cluster;
  std::vector<gossip::Key> keys;  // empty: in the clear
  std::size_t max_pending = 65536;  // flows waiting to be sent
  // gossip mode: user events of at most this many bytes
  std::size_t gossip_payload = 256;
  // Received flows are deleted by the in-kernel program, a batch per run
  // (kernel/ct_invalidate.h); false, or when it cannot be loaded: one
  // lookup-and-delete syscall per flow.
  bool kernel_apply = true;
};

struct InvalidationCounters {
  // this node's closes
  std::uint64_t closes = 0;        // events handed in by close tracking
  std::uint64_t local_only = 0;    // ... of flows no peer forwarded (or local clients): nothing to send
  std::uint64_t fallback = 0;      // targeted: origin unknown, sent to every peer
  std::uint64_t sent_messages = 0;
  std::uint64_t sent_flows = 0;
  std::uint64_t send_errors = 0;   // datagrams or events the kernel or gossip refused
  std::uint64_t dropped = 0;       // flows beyond max_pending
  // what the other nodes sent
  std::uint64_t received_messages = 0;
  std::uint64_t received_flows = 0;
  std::uint64_t applied = 0;       // entries deleted
  std::uint64_t unmatched = 0;     // flows without an entry pointing at the sender
  std::uint64_t refused_unauthenticated = 0;  // no key of the ring opens it
  std::uint64_t refused_malformed = 0;
  std::uint64_t refused_replayed = 0;
  std::uint64_t refused_stale = 0;            // sent_us too far from this node's clock
  std::uint64_t refused_unknown_sender = 0;   // not a node of the data path (or this one)
};

// Each counter with its name ("sent_messages", ...), for stats and /metrics.
std::vector<std::pair<std::string_view, std::uint64_t>> invalidation_counter_list(
    const InvalidationCounters& c);

// Close-to-delete latency of the most recent applied flows, in microseconds.
struct LatencySummary {
  std::size_t samples = 0;
  double p50_us = 0, p99_us = 0, max_us = 0;
};

class Invalidator {
 public:
  // `gossip_send` hands a payload to the gossip layer (gossip mode only).
  using GossipSend = std::function<std::error_code(std::vector<std::uint8_t>)>;
  Invalidator(boost::asio::io_context& io, InvalidatorSettings settings, DatapathMaps& maps,
              GossipSend gossip_send = {});
  ~Invalidator();
  Invalidator(const Invalidator&) = delete;
  Invalidator& operator=(const Invalidator&) = delete;

  // Binds the mode's sockets (none in gossip mode); the error names what
  // failed. Loads the in-kernel apply too (kernel_apply), or warns and
  // deletes a flow per syscall.
  std::error_code start(std::string& what);
  void stop();

  void on_close(const mixlb_close_event& event);
  // A payload of a gossip user event (gossip mode).
  void on_gossip_event(std::span<const std::uint8_t> payload);
  // A datagram as it arrived (the UDP modes; tests feed them here too).
  void on_datagram(std::span<const std::uint8_t> datagram);
  // The keyring changed (mixlbctl keys).
  void set_keys(const std::vector<gossip::Key>& keys);

  InvalidationMode mode() const { return settings_.mode; }
  // Whether received flows are deleted in the kernel, a batch per run.
  bool applies_in_kernel() const { return kernel_ != nullptr; }
  std::uint16_t port() const { return settings_.port; }
  const InvalidationCounters& counters() const { return counters_; }
  LatencySummary latency() const;

 private:
  struct Pending {
    std::vector<mixlb_flow_key> flows;
    std::int64_t oldest_close_us = 0;
  };
  void queue(std::optional<Address> to, const mixlb_flow_key& flow, std::int64_t closed_us);
  void flush();
  void send_batches(const std::optional<Address>& to, Pending& pending, std::size_t room);
  void send_datagram(const Address& to, std::span<const std::uint8_t> plaintext);
  void receive();
  // `windowed`: judge replays by the sender's sequence window (the UDP
  // modes), else by age alone (gossip events: ReplayGuard::check_age).
  void apply(std::span<const std::uint8_t> plaintext, bool windowed = true);
  // Deletes the flows' entries that point at `sender`; returns how many.
  std::size_t delete_entries(std::span<const mixlb_flow_key> flows, std::uint32_t sender);
  void record_latency(std::uint32_t latency_us, std::size_t count);
  std::optional<Address> lookup_address(std::uint32_t node_id) const;
  std::optional<Address> node_address(std::uint32_t node_id) const;  // cached until the next flush
  std::vector<Address> peer_addresses() const;

  boost::asio::io_context& io_;
  InvalidatorSettings settings_;
  DatapathMaps& maps_;
  std::unique_ptr<CtInvalidateProgram> kernel_;  // the in-kernel apply, when loaded
  GossipSend gossip_send_;
  std::optional<gossip::Keyring> keyring_;
  ReplayGuard guard_;
  boost::asio::ip::udp::socket rx_;
  boost::asio::ip::udp::socket tx_;
  std::vector<std::uint8_t> rx_buffer_;
  boost::asio::ip::udp::endpoint rx_from_;
  boost::asio::ip::udp::endpoint tx_local_;
  // Flows waiting, by destination: nullopt is "the mode's one channel"
  // (group, broadcast address or gossip); an address is a targeted peer.
  std::map<std::optional<Address>, Pending> pending_;
  std::size_t pending_flows_ = 0;
  // Node addresses looked up since the last flush (node_address).
  mutable std::unordered_map<std::uint32_t, std::optional<Address>> addresses_;
  bool flush_posted_ = false;
  std::uint64_t sequence_;
  InvalidationCounters counters_;
  std::vector<std::uint32_t> latencies_us_;  // a ring of the last kLatencySamples
  std::size_t latency_next_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace mixlb
