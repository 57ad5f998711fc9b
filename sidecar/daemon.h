#pragma once
// The mixlb daemon: a thin wiring of the parts, each of which does one job,
// on one Boost.Asio io_context.
//
//   InstanceLock     one sidecar per node (kernel/instance_lock.h)
//   HostSetup        sysctls and VIPs on lo, with the HostRecord of what
//                    mixlb changed (kernel/host_setup.h, host_record.h)
//   XdpProgram       the program, its pinned maps and link (kernel/datapath.h)
//   ClusterSync      the only writer of the maps (cluster/cluster_sync.h)
//   NeighbourKeeper  peers' neighbour entries and MACs (cluster/)
//   GossipBridge     membership by gossip, posted to this thread
//   HealthChecks     the app's checks, one per service
//   AdminServer      the admin socket, answering through AdminCommands (the
//                    command table's handlers, below); status.h builds the
//                    results; MonitorHub streams events to `mixlbctl monitor`
//   MetricsEndpoint  Prometheus /metrics (metrics/endpoint.h)
//
// Start-up. First everything that can fail without changing anything: the
// instance lock, privileges, a bpffs, the interface, the host record of a
// predecessor, the keyring, the gossip, admin and metrics sockets, the
// pinned maps' sizes. Then the changes: load (adopting pinned maps), host settings,
// first tables (without gossip), attach (swapping into the pinned link),
// neighbours, the app check, the join. A start that fails after that undoes
// only what this instance made; what it adopted keeps running.
//
// The ways out (docs/operations.md has the table):
//   restart   SIGTERM/SIGINT (node.on_stop = "restart", the default): publish
//             "restarting" (no new flows from peers), stop gossip without a
//             leave, and leave the data path, the VIPs, the sysctls and the
//             neighbour entries for the next sidecar, which adopts them;
//   leave     `mixlbctl leave` (or SIGTERM with on_stop = "leave"): drain,
//             announce the leave, serve established connections until they
//             end or leave_timeout_ms, then remove everything;
//   cleanup   `mixlb cleanup` (cleanup.h) for a node whose sidecar is gone.
// SIGHUP and `mixlbctl reload` read the configuration again and apply what
// changed while running (config/diff.h says what can be).
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "admin/admin_server.h"
#include "admin/monitor.h"
#include "admin/rates.h"
#include "admin/results.h"
#include "cluster/cluster_sync.h"
#include "cluster/neighbour_keeper.h"
#include "cluster/which.h"
#include "config/config.h"
#include "keyring.h"  // gossip/keyring.h
#include "kernel/close_tracker.h"
#include "reuseport/handoff.h"
#include "reuseport/sockets.h"
#include "invalidator.h"
#include "kernel/conntrack_walk.h"
#include "kernel/datapath.h"
#include "kernel/host_record.h"
#include "kernel/host_setup.h"
#include "kernel/instance_lock.h"
#include "kernel/netlink.h"
#include "kernel/sysctl.h"

namespace mixlb {

class AdminCommands;
class GossipBridge;
class LogTap;
class HealthChecks;
struct MemberMetadata;
namespace metrics {
class ConntrackWalker;
class MetricsEndpoint;
struct MetricsSources;
}  // namespace metrics

// A start-up step failed; the message says which and why.
class StartupError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The kernel as the daemon's host-side parts see it. Empty members mean the
// real thing; tests put fakes in.
struct DaemonSeams {
  Rtnl* netlink = nullptr;
  SysctlOps* sysctls = nullptr;
};

class Daemon {
 public:
  // `args`: the command line after the program name, read again by a
  // reload (the file it names, and the flags that override it).
  explicit Daemon(Config config, DaemonSeams seams = {}, std::vector<std::string> args = {});
  ~Daemon();

  // Starts, serves until told to stop, stops as told. Returns the exit
  // code. Throws StartupError when start-up fails (after undoing what it did).
  int run();

  // The admin request handler (public for tests of the admin surface).
  boost::asio::awaitable<AdminAnswer> handle_admin(std::string cmd, nlohmann::json args);

 private:
  enum class Phase { kStarting, kServing, kLeaving, kStopping };

  void start();
  void validate_and_probe();
  void undo_start();
  void on_undo(std::string what, std::function<void()> undo);
  void persist_record();

  void setup_datapath();
  void setup_host();
  void setup_health();
  void setup_gossip();
  void setup_metrics();
  metrics::MetricsSources metrics_sources();
  void move_metrics(const Config& next);
  void watch_signals();

  ReloadResult reload();
  void apply_vips(const Config& next);

  void stop_for_restart();
  void begin_leave(std::string why);
  boost::asio::awaitable<void> leave();
  boost::asio::awaitable<void> off_thread(std::function<void()> work);
  void remove_everything();
  void finish();

  boost::asio::awaitable<void> watch_uplink();
  void check_uplink();

  MemberMetadata self_metadata() const;
  void publish_self();
  std::vector<Member> desired_members() const;
  void schedule_resync();
  void resync();
  void arm_grace_timer();

  std::unique_ptr<AdminCommands> make_admin_commands();
  StatsResult stats();
  StatusResult status();
  DrainResult set_drained(bool drained);
  LeaveResult leave_command();
  boost::asio::awaitable<MembersResult> members(std::vector<std::string> states);
  boost::asio::awaitable<CtResult> conntrack_entries(nlohmann::json args);
  AdminAnswer monitor(const std::string& level);
  boost::asio::awaitable<KeysResult> keys(std::string op, std::optional<std::string> key);
  void keyring_changed(const std::vector<gossip::Key>& keys);
  // Once a second: a sample for the rates of `vips`, and the changes for
  // `monitor`.
  boost::asio::awaitable<void> sample_loop();
  // Every conntrack.sweep_interval_ms: a sweep of the connection table on
  // ct_walker_'s thread (kernel/conntrack_walk.h, sweep_conntrack).
  boost::asio::awaitable<void> sweep_loop();
  void setup_close_tracking();
  void setup_sockets();
  std::string handoff_path() const;
  nlohmann::json sockets_request(const nlohmann::json& args);
  // The invalidator of conntrack.invalidation (invalidator.h), before close
  // tracking feeds it; a socket it cannot bind fails the start.
  void setup_invalidation();
  // Where the broadcast mode sends: the broadcast address of the
  // interface's subnet that holds this node's address.
  Address broadcast_address();
  // ct_walker_, opened on the pinned table at first use.
  metrics::ConntrackWalker& conntrack_walker();
  void watch_changes();

  Config config_;
  DaemonSeams seams_;
  std::vector<std::string> args_;
  boost::asio::io_context io_;
  boost::asio::signal_set signals_;
  Phase phase_ = Phase::kStarting;
  int exit_code_ = 0;

  std::optional<InstanceLock> lock_;
  std::unique_ptr<RtNetlink> own_netlink_;
  ProcSysctls own_sysctls_;
  Rtnl* netlink_ = nullptr;
  SysctlOps* sysctls_ = nullptr;

  int ifindex_ = 0;
  int lo_ifindex_ = 0;
  Address address_;
  MacAddress mac_{};
  std::vector<VipEntry> vips_;        // as configured
  std::vector<VipEntry> table_vips_;  // with the serving sets the tables were built from
  std::vector<Member> static_members_;

  std::string record_path_;
  HostRecord record_;
  std::unique_ptr<HostSetup> host_;
  std::unique_ptr<XdpProgram> program_;
  std::unique_ptr<XdpProgram> dry_run_;  // shares program_'s maps; for `which`
  std::unique_ptr<FlowOracle> oracle_;
  std::unique_ptr<ClusterSync> sync_;
  std::unique_ptr<NeighbourKeeper> keeper_;
  std::unique_ptr<HealthChecks> health_;
  std::unique_ptr<GossipBridge> gossip_;
  std::unique_ptr<AdminCommands> commands_;
  std::unique_ptr<AdminServer> admin_;
  std::shared_ptr<MonitorHub> monitor_;
  std::unique_ptr<LogTap> log_tap_;  // made before any thread logs
  CounterRates rates_;
  ChangeWatch changes_;
  std::unique_ptr<metrics::MetricsEndpoint> metrics_;  // null when metrics.listen = off
  // Walks the pinned connection table for `ct`, on a thread of its own;
  // opened at the first `ct`.
  std::unique_ptr<metrics::ConntrackWalker> ct_walker_;
  // Null when the kernel (or the container) refused close tracking.
  std::unique_ptr<CloseTracker> close_tracker_;
  std::unique_ptr<SocketService> sockets_;  // null when sockets.enabled is false or the kernel refused
  std::unique_ptr<HandoffServer> handoff_;  // with sockets_: where cooperating apps register
  // The keys read at start (gossip.keyring), for the invalidator too.
  std::vector<gossip::Key> keys_;
  std::unique_ptr<Invalidator> invalidator_;

  bool joined_ = false;          // the first tables may be published
  bool resync_pending_ = false;  // a resync() is posted
  bool drained_ = false;         // `mixlbctl drain`: publish weight 0
  bool restarting_ = false;      // stopping for a restart: publish it
  std::uint64_t resyncs_ = 0;
  std::string last_sync_error_;
  std::string uplink_state_ = "attached";  // attached | detached | missing
  std::chrono::steady_clock::time_point leave_started_{};
  std::string leave_state_;  // what the leave waits for, for status
  boost::asio::steady_timer grace_timer_;
  boost::asio::steady_timer uplink_timer_;
  boost::asio::steady_timer sample_timer_;
  boost::asio::steady_timer sweep_timer_;
  // What the sweeper removed since start (for `stats`), and how many sweeps.
  SweepResult swept_;
  std::uint64_t sweeps_ = 0;
  std::string sweep_problem_;  // the last reason a sweep failed, said once
  std::vector<std::pair<std::string, std::function<void()>>> undo_;
};

}  // namespace mixlb
