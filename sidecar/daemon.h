#pragma once
// The mixlb daemon: wires configuration, kernel setup, the XDP program, the
// member set and the admin socket together on one Boost.Asio io_context.
//
// Start-up does, in order: resolve the interface and the node's address; set
// arp_ignore/arp_announce/forwarding (IPv6 forwarding too when a node address
// is IPv6); put the VIPs on lo; load the program (adopting pinned maps) and a
// dry-run copy sharing its maps; publish the Maglev tables; attach; keep the
// peers' neighbour entries resolved; open the admin socket. Every step that
// changes the host pushes its undo onto a stack, and SIGTERM (or a failed
// start) unwinds that stack, so the daemon removes exactly what it added.
//
// Membership. With gossip (the default) the peer list is only the seed list:
// the members are whoever gossip holds alive, each with what it publishes
// (member_metadata.h), and every change rebuilds the tables through
// ClusterSync on this thread. The gossip transport runs on its own thread
// and posts its events here. The first tables are published once a join
// through a seed has succeeded (or the join failed through every seed), so
// a restarted sidecar keeps the pinned tables of its predecessor until it
// knows the cluster. Without
// gossip the peer list is the member set, fixed for the daemon's life.

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "cluster/cluster_sync.h"
#include "cluster/membership.h"
#include "cluster/which.h"
#include "config/config.h"
#include "kernel/datapath.h"
#include "kernel/netlink.h"

namespace mixlb {
namespace gossip {
class Transport;
}

class AdminServer;
class HealthChecker;

// A start-up step failed; the message says which and why.
class StartupError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What the daemon knows about one member, for tables and status.
struct PeerState {
  Member member;
  bool self = false;
  std::optional<MacAddress> mac;   // learned from the neighbour table
  std::string neighbour = "none";  // state name, "self" for this node
  bool managed_neighbour = false;  // the kernel keeps it resolved
  bool created_neighbour = false;  // this daemon added the entry (and deletes it)
};

class Daemon {
 public:
  explicit Daemon(Config config);
  ~Daemon();

  // Starts, serves until SIGTERM/SIGINT, cleans up. Returns the exit code.
  // Throws StartupError when start-up fails (after undoing what it did).
  int run();

  // The admin request handler (public for tests of the admin surface).
  nlohmann::json handle_admin(std::string_view cmd, const nlohmann::json& args);

 private:
  void start();
  void stop();
  void undo_all();
  void on_undo(std::string what, std::function<void()> undo);

  void setup_kernel();
  void setup_datapath();
  void setup_neighbours();
  void setup_health();
  void setup_gossip();
  void refresh_neighbours();
  void schedule_neighbour_refresh();
  void add_peer(const Member& member);
  void forget_peer(PeerState& peer);
  bool sync_peers(const std::vector<Member>& members);
  std::vector<Member> members() const;
  // What the tables are built from: gossip's view, or the static peer list.
  std::vector<Member> desired_members() const;

  void on_gossip_event(const gossip::Event& event);
  MemberMetadata self_metadata() const;
  void publish_self();
  void schedule_resync();
  void resync();

  nlohmann::json status();
  nlohmann::json stats();
  nlohmann::json members_json();
  nlohmann::json set_drained(bool drained);

  Config config_;
  boost::asio::io_context io_;
  boost::asio::signal_set signals_;
  boost::asio::steady_timer neighbour_timer_;
  std::optional<RtNetlink> netlink_;
  int ifindex_ = 0;
  int lo_ifindex_ = 0;
  Address address_;
  MacAddress mac_{};
  std::vector<PeerState> peers_;  // self first
  std::vector<Member> static_members_;  // without gossip: this node and the peer list
  std::vector<VipEntry> vips_;          // as configured
  std::vector<VipEntry> table_vips_;    // with the serving sets the tables were built from
  std::unique_ptr<XdpProgram> program_;
  std::unique_ptr<XdpProgram> dry_run_;  // shares program_'s maps; for `which`
  std::unique_ptr<FlowOracle> oracle_;
  std::unique_ptr<HealthChecker> health_;
  std::unique_ptr<ClusterSync> sync_;
  std::unique_ptr<Membership> membership_;
  gossip::Address gossip_address_;
  std::unique_ptr<gossip::Transport> gossip_;
  bool joined_ = false;          // the first tables may be published
  JoinWait join_wait_{0};        // decides joined_ with gossip
  bool resync_pending_ = false;  // a resync() is posted
  bool drained_ = false;         // `mixlbctl drain`: publish weight 0
  std::uint64_t resyncs_ = 0;
  std::uint64_t user_events_ = 0;
  std::string last_sync_error_;
  std::unique_ptr<AdminServer> admin_;
  std::vector<std::pair<std::string, std::function<void()>>> undo_;
  bool stopping_ = false;
};

}  // namespace mixlb
