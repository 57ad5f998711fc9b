#pragma once
// GossipBridge joins the gossip layer (its own thread, gossip/transport.h)
// to the sidecar's io_context. Everything crosses by posting: the
// transport's events are posted here and applied to Membership on this
// thread; snapshots of the transport's counters come back the same way, so
// the io_context's thread never waits on the gossip thread.
//
// It also owns the join rule for a starting sidecar (JoinWait): the first
// tables are published once a seed has answered (or every seed failed), so
// a restarted sidecar keeps its predecessor's pinned tables until it knows
// the cluster.
//
// Its life: bind() (the port is checked before the sidecar touches the
// kernel), start() (joins), then stop() — kQuiet for a restart (publish
// "restarting" first, so peers send no new flows; no leave: the successor
// refutes its death), kLeave for a leave.
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "cluster/member_metadata.h"
#include "cluster/membership.h"
#include "transport.h"

namespace mixlb {

struct GossipSettings {
  // The core's configuration (with this node's first metadata), the
  // keyring, the bind address.
  gossip::TransportOptions options;
  std::vector<gossip::Address> seeds;
  // Seeds given by name (gossip.seeds), resolved by the transport at the
  // start and at every re-join.
  std::vector<gossip::SeedName> seed_names;
  std::string cluster;  // for messages; the keyring carries it on the wire
  std::chrono::steady_clock::duration flow_grace = std::chrono::minutes(1);
};

class GossipBridge {
 public:
  // `on_change` runs on the io_context's thread whenever the tables' inputs
  // changed (members, their metadata, the join state).
  // `on_keyring` runs on the io_context's thread with this node's keys (the
  // primary first) whenever a key request changed them, this node's or
  // another member's.
  GossipBridge(boost::asio::io_context& io, std::string self_name, std::vector<VipEntry> vips,
               GossipSettings settings, std::function<void()> on_change,
               std::function<void(std::vector<gossip::Key>)> on_keyring = {});
  ~GossipBridge();
  GossipBridge(const GossipBridge&) = delete;
  GossipBridge& operator=(const GossipBridge&) = delete;

  // Binds the UDP and TCP sockets (a bad configuration throws
  // std::invalid_argument from the transport).
  std::error_code bind();
  // Joins through the seeds, publishing `self`.
  std::error_code start(const MemberMetadata& self);
  // Publishes new metadata; true when the tables' inputs changed.
  bool publish(const MemberMetadata& self);
  // Stops the transport (idempotent).
  void stop(gossip::StopMode mode);

  // Takes a snapshot on the gossip thread and hands it to `done` on the
  // io_context's thread.
  using SnapshotResult = std::expected<gossip::TransportSnapshot, std::error_code>;
  void snapshot(std::function<void(SnapshotResult)> done);

  // Starts a key request on every member (transport.h: key_request_async);
  // `done` runs once, on the io_context's thread.
  using KeyRequestResult = gossip::Transport::KeyRequestResult;
  void key_request(gossip::KeyOp op, std::optional<gossip::Key> key,
                   std::function<void(KeyRequestResult)> done);
  // This node's keys, the primary first; empty without a keyring.
  std::vector<gossip::Key> keys() const;

  Membership& membership() { return membership_; }
  const Membership& membership() const { return membership_; }
  // The first tables may be published.
  bool joined() const { return joined_; }
  const gossip::Address& address() const { return address_; }
  std::uint64_t user_events() const { return user_events_; }
  // Sends a user event to every member (transport.h: send_user_event).
  std::error_code send_user_event(std::vector<std::uint8_t> payload);
  // `handler` runs on the io_context's thread with each user event another
  // member sent.
  void on_user_event(std::function<void(const gossip::UserEventDelivery&)> handler) {
    on_user_event_ = std::move(handler);
  }
  bool running() const { return transport_ && transport_->running(); }

 private:
  void on_event(const gossip::Event& event);
  // A join result or the seed names' first resolution: `over` when the
  // first tables may be published.
  void end_join_wait(bool over);

  boost::asio::io_context& io_;
  Membership membership_;
  gossip::Address address_;
  gossip::Duration rejoin_interval_;
  GossipSettings settings_;  // its options are moved to the transport by bind()
  std::function<void()> on_change_;
  std::function<void(std::vector<gossip::Key>)> on_keyring_;
  std::function<void(const gossip::UserEventDelivery&)> on_user_event_;
  // Set by the destructor: events posted before it must not run after it.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::unique_ptr<gossip::Transport> transport_;
  JoinWait join_wait_{0};
  bool joined_ = false;
  bool stopped_ = false;
  std::uint64_t user_events_ = 0;
};

}  // namespace mixlb
