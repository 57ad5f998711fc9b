#pragma once
// NeighbourKeeper keeps the peers reachable at layer 2: bpf_fib_lookup only
// forwards to a peer whose neighbour entry is resolved (NO_NEIGH otherwise),
// and a frame a peer forwarded is recognised by its source MAC. For every
// member it asks the kernel for a managed neighbour entry (kept resolved by
// the kernel itself, Linux 5.16+; kicked by hand where the kernel cannot),
// reads the entries back on a timer and hands each resolved MAC to
// ClusterSync, which writes the peer-MAC map.
//
// Entries it creates are the node's to remove one day, perhaps by another
// process: they go into the HostRecord as they are made, a restarted
// sidecar's keeper knows them as its own from there, and an entry leaves the
// record when the keeper deletes it (a member gone for good) or when a
// leave or cleanup puts the host back. A stop for a restart leaves them.
//
// One coroutine on the io_context; every method runs on its thread.
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "cluster/cluster_sync.h"
#include "kernel/host_record.h"
#include "kernel/netlink.h"

namespace mixlb {

// What the keeper knows about one member, for status.
struct PeerState {
  Member member;
  std::optional<MacAddress> mac;   // as resolved; this node's own for itself
  std::string neighbour = "none";  // the entry's state name; "self" for this node
  bool managed_neighbour = false;  // the kernel keeps it resolved
  bool created_neighbour = false;  // mixlb made the entry (and deletes it)
};

class NeighbourKeeper {
 public:
  using Persist = std::function<void()>;

  NeighbourKeeper(boost::asio::io_context& io, Rtnl& netlink, ClusterSync& sync, HostRecord& record,
                  Persist persist, int ifindex, std::chrono::milliseconds refresh);
  ~NeighbourKeeper();
  NeighbourKeeper(const NeighbourKeeper&) = delete;
  NeighbourKeeper& operator=(const NeighbourKeeper&) = delete;

  // Makes the kept set exactly `members` (this node is kept as it is given:
  // first, with `self_mac`). New peers get their entry and, when it is
  // resolved already, their MAC at once; peers no longer listed lose their
  // MAC and, if mixlb made it, their entry. Returns whether any was added.
  bool sync(std::span<const Member> members, const MacAddress& self_mac);
  // Reads every peer's entry once: MACs to ClusterSync, kicks where needed.
  void refresh();

  // Starts and stops the periodic refresh.
  void start();
  void stop();

  // The uplink came back with another index.
  void set_ifindex(int ifindex) { ifindex_ = ifindex; }
  // A reload: from the next refresh on.
  void set_refresh(std::chrono::milliseconds refresh) { refresh_ = refresh; }

  const std::vector<PeerState>& peers() const { return peers_; }

 private:
  void add_peer(const Member& member);
  void forget_peer(PeerState& peer);

  boost::asio::io_context& io_;
  Rtnl& netlink_;
  ClusterSync& sync_;
  HostRecord& record_;
  Persist persist_;
  int ifindex_;
  std::chrono::milliseconds refresh_;
  std::vector<PeerState> peers_;  // this node first
  boost::asio::steady_timer timer_;
  std::shared_ptr<bool> running_ = std::make_shared<bool>(false);
};

}  // namespace mixlb
