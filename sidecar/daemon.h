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

#include "cluster_sync.h"
#include "config.h"
#include "datapath.h"
#include "netlink.h"
#include "which.h"

namespace mixlb {

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
  void refresh_neighbours();
  void schedule_neighbour_refresh();
  std::vector<Member> members() const;
  nlohmann::json status();
  nlohmann::json stats();

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
  std::vector<VipEntry> vips_;
  std::unique_ptr<XdpProgram> program_;
  std::unique_ptr<XdpProgram> dry_run_;  // shares program_'s maps; for `which`
  std::unique_ptr<FlowOracle> oracle_;
  std::unique_ptr<HealthChecker> health_;
  std::unique_ptr<ClusterSync> sync_;
  std::unique_ptr<AdminServer> admin_;
  std::vector<std::pair<std::string, std::function<void()>>> undo_;
  bool stopping_ = false;
};

}  // namespace mixlb
