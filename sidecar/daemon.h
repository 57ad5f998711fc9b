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
// FlowOracle answers the admin command `which` ("which node would serve this
// flow?") by running the flow's first packet through the dry-run program
// against the live maps, so the answer is the data path's own, not a model
// of it that could drift; it is its own type so the datapath tests drive the
// same code as the daemon.
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

namespace mixlb {

class AdminServer;

// A start-up step failed; the message says which and why.
class StartupError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The flow a `which` request asks about (ports in host byte order).
struct ProbeFlow {
  std::uint8_t protocol = 6;  // IPPROTO_TCP or IPPROTO_UDP
  Address src;
  std::uint16_t sport = 0;
  Address vip;
  std::uint16_t vport = 0;
};

// Reads the arguments of `which`: {"proto":"tcp"|"udp", "src":ADDRESS,
// "sport":PORT, "vip":ADDRESS, "vport":PORT}. Throws AdminError naming the
// argument and what is wrong with it (unknown or missing key, bad address,
// port outside 1..65535, src and vip of different families).
ProbeFlow parse_which_args(const nlohmann::json& args);

// The flow's first packet as it would arrive at the node: Ethernet, IPv4 or
// IPv6, then a TCP SYN or an empty UDP datagram, every checksum valid.
std::vector<std::uint8_t> probe_frame(const ProbeFlow& flow, const MacAddress& src_mac,
                                      const MacAddress& dst_mac);

// The source MAC of the frames `which` sends through the dry run: the first
// of 02:00:00:00:00:01, :02, ... (locally administered, so no real NIC's)
// that is not in the peer-MAC map, because a frame from a peer's MAC is
// delivered locally without balancing and would not show the decision.
DpResult<MacAddress> probe_source_mac(const DatapathMaps& maps);

// Answers `which` with a dry-run XdpProgram that shares the live program's
// maps: the decision comes from the same code, tables and connection table
// that serve traffic, and the dry run changes none of them.
class FlowOracle {
 public:
  // `ifindex` is where the probe arrives (the uplink, so bpf_fib_lookup sees
  // what a real packet would); `node_mac` is its destination MAC.
  FlowOracle(XdpProgram& dry_run, int ifindex, const MacAddress& node_mac);

  // {"flow":{proto,src,sport,dst,dport}, "vip":LABEL|null, "node":NAME|null,
  //  "node_id":N, "self":BOOL, "verdict":"pass"|"tx"|"redirect"|"drop"|"aborted",
  //  "drop_reason":NAME (dropped only), "from_conntrack":BOOL}. Names come
  // from `members` and `vips` (ids through `sync`).
  nlohmann::json which(const ProbeFlow& flow, std::span<const Member> members,
                       std::span<const VipEntry> vips, const ClusterSync& sync);

 private:
  XdpProgram& dry_run_;
  int ifindex_;
  MacAddress node_mac_;
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
  std::unique_ptr<ClusterSync> sync_;
  std::unique_ptr<AdminServer> admin_;
  std::vector<std::pair<std::string, std::function<void()>>> undo_;
  bool stopping_ = false;
};

}  // namespace mixlb
