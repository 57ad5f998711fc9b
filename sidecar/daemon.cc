#include "daemon.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "admin/admin_protocol.h"
#include "admin/admin_server.h"
#include "admin/handlers.h"
#include "admin/log_tap.h"
#include "cluster/member_metadata.h"
#include "cluster/node_id.h"
#include "common/log_failure.h"
#include "common/quote.h"
#include "config/diff.h"
#include "config/keyring_file.h"
#include "config/keys.h"
#include "gossip_bridge.h"
#include "health.h"
#include "kernel/bpffs.h"
#include "kernel/capabilities.h"
#include "kernel/vip_sockets.h"
#include "leave_wait.h"
#include "logging.h"
#include "cluster/conntrack_view.h"
#include "metrics/conntrack_census.h"
#include "metrics/endpoint.h"
#include "settings.h"
#include "status.h"

namespace mixlb {

namespace asio = boost::asio;

namespace {

// How often the uplink and the program's link are checked.
constexpr std::chrono::seconds kUplinkCheck{1};

[[noreturn]] void startup_failed(const std::string& what, std::error_code ec) {
  throw StartupError(what + ": " + ec.message());
}

// Every packet that reached a VIP here: counted while a leave waits for
// the node to go quiet.
std::uint64_t vip_packets(const DatapathMaps& maps, const ClusterSync& sync,
                          std::span<const VipEntry> vips) {
  std::uint64_t total = 0;
  for (const auto& v : vips) {
    const auto id = sync.vip_id(v.key);
    if (!id) continue;
    if (auto c = maps.vip_counters(*id)) total += c->local_pkts + c->fwd_pkts + c->from_peer_pkts;
  }
  return total;
}

}  // namespace

Daemon::Daemon(Config config, DaemonSeams seams, std::vector<std::string> args)
    : config_(std::move(config)),
      seams_(seams),
      args_(std::move(args)),
      signals_(io_, SIGTERM, SIGINT, SIGHUP),
      monitor_(std::make_shared<MonitorHub>()),
      log_tap_(std::make_unique<LogTap>(monitor_)),
      grace_timer_(io_),
      uplink_timer_(io_),
      sample_timer_(io_),
      sweep_timer_(io_) {}

Daemon::~Daemon() {
  // Destroyed without run() finishing (an exception from run()): what this
  // instance made is undone, nothing adopted is touched.
  undo_start();
}

void Daemon::on_undo(std::string what, std::function<void()> undo) {
  undo_.emplace_back(std::move(what), std::move(undo));
}

void Daemon::undo_start() {
  while (!undo_.empty()) {
    auto [what, undo] = std::move(undo_.back());
    undo_.pop_back();
    spdlog::debug("undo: {}", what);
    try {
      undo();
    } catch (const std::exception& e) {
      spdlog::error("while undoing '{}': {}", what, e.what());
    }
  }
}

void Daemon::persist_record() {
  if (auto ec = save_host_record(record_path_, record_))
    spdlog::error("saving the host record {}: {}", record_path_, ec.message());
}

int Daemon::run() {
  try {
    start();
  } catch (...) {
    undo_start();
    throw;
  }
  // Started: the ways out are stop_for_restart() and leave(), never the
  // undo list.
  undo_.clear();
  phase_ = Phase::kServing;
  watch_signals();
  asio::co_spawn(io_, watch_uplink(), log_failure("uplink watch"));
  asio::co_spawn(io_, sample_loop(), log_failure("counter sampling"));
  asio::co_spawn(io_, sweep_loop(), log_failure("connection-table sweeper"));
  spdlog::info("serving; admin socket {}", config_.node.admin_socket);
  io_.run();
  return exit_code_;
}

void Daemon::watch_signals() {
  signals_.async_wait([this](const boost::system::error_code& ec, int signo) {
    if (ec) return;
    if (signo == SIGHUP) {
      try {
        const nlohmann::json result = reload();
        spdlog::info("SIGHUP: {}", result.dump());
      } catch (const std::exception& e) {
        spdlog::error("SIGHUP: the configuration was not reloaded: {}", e.what());
      }
      watch_signals();
      return;
    }
    if (phase_ == Phase::kLeaving) {
      spdlog::warn("signal {} during the leave: it goes on until its timeout", signo);
      watch_signals();
      return;
    }
    if (config_.node.on_stop == StopAction::kLeave) {
      begin_leave(fmt::format("signal {} (node.on_stop = leave)", signo));
      watch_signals();
      return;
    }
    spdlog::info("signal {} received: stopping for a restart", signo);
    stop_for_restart();
  });
}

// --- start-up ----------------------------------------------------------------

namespace {

// Each start-up step, timed: every step is logged at debug with its
// duration, and one that takes longer than a second at info, so a start that
// hangs (attaching under load took 24 s once) says where.
template <typename Step>
void timed_step(std::string_view name, Step&& step) {
  const auto begin = std::chrono::steady_clock::now();
  step();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - begin)
                      .count();
  spdlog::log(ms >= 1000 ? spdlog::level::info : spdlog::level::debug, "start-up: {} took {} ms",
              name, ms);
}

}  // namespace

void Daemon::start() {
  timed_step("checks (lock, privileges, bpffs, interface, record, keyring, sockets)",
             [this] { validate_and_probe(); });
  timed_step("metrics endpoint", [this] { setup_metrics(); });
  timed_step("loading the XDP program", [this] { setup_datapath(); });
  timed_step("host settings (sysctls, VIPs on lo)", [this] { setup_host(); });

  sync_ = std::make_unique<ClusterSync>(program_->maps(), config_.datapath.max_vips);
  // With gossip the first tables wait for the join (gossip_bridge.h).
  if (!config_.gossip.enabled) {
    if (auto r = sync_->apply(static_members_, vips_); !r) throw StartupError(r.error().message());
    joined_ = true;
  }

  DpResult<AttachMode> mode = std::unexpected(DatapathError{});
  timed_step("attaching XDP", [&] { mode = program_->attach(ifindex_, config_.datapath.xdp_mode); });
  if (!mode) throw StartupError(mode.error().message() + " on " + config_.node.interface);
  if (*mode == AttachMode::kGeneric)
    spdlog::warn("XDP runs in generic mode on {}: correct but slower than native", config_.node.interface);
  spdlog::info("XDP {} {} in {} mode", program_->adopted_link() ? "kept on (adopted the pinned link of)" : "attached to",
               config_.node.interface, to_string(*mode));

  keeper_ = std::make_unique<NeighbourKeeper>(
      io_, *netlink_, *sync_, record_, [this] { persist_record(); }, ifindex_,
      std::chrono::milliseconds(config_.neighbours.refresh_ms));
  on_undo("stop the neighbour keeper", [this] { keeper_->stop(); });
  timed_step("neighbour entries", [this] {
    keeper_->sync(desired_members(), mac_);
    keeper_->refresh();
  });
  keeper_->start();

  timed_step("invalidation", [this] { setup_invalidation(); });
  timed_step("close tracking", [this] { setup_close_tracking(); });
  timed_step("reuseport selector", [this] { setup_sockets(); });
  setup_health();
  timed_step("joining gossip", [this] { setup_gossip(); });
}

void Daemon::setup_invalidation() {
  InvalidatorSettings s;
  s.mode = config_.conntrack.invalidation;
  const bool udp = s.mode != InvalidationMode::kOff && s.mode != InvalidationMode::kGossip;
  if (udp && keys_.empty() && !config_.gossip.insecure) {
    spdlog::warn("conntrack.invalidation = {} needs a keyring to seal its datagrams (gossip.keyring), "
                 "or gossip.insecure = true to send them in the clear: invalidation is off, the other "
                 "nodes' entries of closed connections wait for the sweeper",
                 to_string(s.mode));
    s.mode = InvalidationMode::kOff;
  }
  s.self_id = node_id_for(config_.node.name);
  s.self_address = address_;
  s.port = static_cast<std::uint16_t>(config_.conntrack.invalidation_port);
  s.group = *config_.conntrack.invalidation_group;
  if (s.mode == InvalidationMode::kBroadcast) s.broadcast = broadcast_address();
  s.max_age = std::chrono::milliseconds(config_.conntrack.invalidation_max_age_ms);
  s.cluster = config_.gossip.cluster;
  s.keys = keys_;
  s.gossip_payload = gossip::Config{}.max_event_payload;
  invalidator_ = std::make_unique<Invalidator>(io_, std::move(s), program_->maps(), [this](std::vector<std::uint8_t> p) {
    if (!gossip_) return std::make_error_code(std::errc::not_connected);
    return gossip_->send_user_event(std::move(p));
  });
  std::string what;
  if (auto ec = invalidator_->start(what)) startup_failed(what, ec);
  on_undo("close the invalidation sockets", [this] { invalidator_->stop(); });
  if (invalidator_->mode() == InvalidationMode::kOff)
    spdlog::info("invalidation is off: the other nodes' entries of closed connections wait for the sweeper");
  else if (invalidator_->mode() == InvalidationMode::kGossip)
    spdlog::info("invalidation by gossip user events");
  else
    spdlog::info("invalidation by {} on UDP port {}{}", to_string(invalidator_->mode()), invalidator_->port(),
                 keys_.empty() ? ", in the clear (gossip.insecure)" : ", sealed with the keyring");
}

Address Daemon::broadcast_address() {
  auto addrs = netlink_->ipv4_addresses(ifindex_);
  if (!addrs) startup_failed("addresses of " + config_.node.interface, addrs.error());
  for (const InterfaceAddress& a : *addrs) {
    if (a.address != address_) continue;
    const std::uint32_t host = ntohl(a.address.words[0]);
    const std::uint32_t mask = a.prefix_len == 0 ? 0 : ~std::uint32_t{0} << (32 - a.prefix_len);
    return Address::v4(htonl(host | ~mask));
  }
  throw StartupError(fmt::format("conntrack.invalidation = broadcast: {} is not an address of {}, so its "
                                 "segment's broadcast address is unknown",
                                 address_.to_string(), config_.node.interface));
}

// Close tracking (kernel/close_tracker.h). A kernel or a container that
// refuses it leaves the sidecar running without it: the sweeper then removes
// closed connections' entries once idle.
void Daemon::setup_close_tracking() {
  auto tracker = CloseTracker::start(
      io_, *program_,
      [this](const mixlb_close_event& e) {
        if (spdlog::should_log(spdlog::level::trace))
          spdlog::trace("close tracking: {} -> {} closed", flow_client(e.flow), flow_vip(e.flow));
        invalidator_->on_close(e);
      },
      std::chrono::milliseconds(config_.conntrack.close_batch_ms));
  if (!tracker) {
    spdlog::warn("no close tracking ({}); entries of closed connections leave the table when the "
                 "sweeper finds them idle",
                 tracker.error().message());
    return;
  }
  close_tracker_ = std::move(*tracker);
  on_undo("detach close tracking", [this] { close_tracker_.reset(); });
}

// The reuseport selector (reuseport/sockets.h). Like close tracking it is
// not needed to balance: a kernel that refuses it leaves the app's sockets
// to the kernel's own SO_REUSEPORT hash, with a warning.
void Daemon::setup_sockets() {
  if (!config_.sockets.enabled) return;
  SocketServiceSettings s;
  s.pin_dir = datapath_settings(config_).pin_dir;
  s.state_path = config_.node.run_dir + "/" + config_.node.name + ".sockets.json";
  s.policy = config_.sockets.policy == SocketPolicy::kCpu ? WorkerPolicy::kCpu : WorkerPolicy::kHash;
  s.udp_idle_ns = std::uint64_t{config_.sockets.udp_idle_ms} * 1'000'000ull;
  s.udp_flows = config_.sockets.udp_flows;
  // A VIP port this node serves: the protocol and port of a configured VIP
  // (or one of its every-port entries), bound to the VIP's address or to
  // any address.
  s.managed = [this](const ServiceKey& key) {
    const bool any = key.address.words == std::array<std::uint32_t, 4>{};
    return std::any_of(vips_.begin(), vips_.end(), [&](const VipEntry& v) {
      if (v.key.proto != key.proto) return false;
      if (v.key.port != 0 && ntohs(v.key.port) != key.port) return false;
      if (any) return true;
      return v.key.family == key.address.family &&
             std::equal(std::begin(v.key.addr), std::end(v.key.addr), key.address.words.begin());
    });
  };
  auto started = SocketService::start(io_, std::move(s));
  if (!started) {
    spdlog::warn("no reuseport selector ({}); the app's sockets are left to the kernel's SO_REUSEPORT hash",
                 started.error().message());
    return;
  }
  sockets_ = std::move(*started);
  on_undo("stop the reuseport selector", [this] { sockets_.reset(); });
  // Where a cooperating app (mixlb-run, client/mixlb_sockets.h) hands its
  // sockets over. Not `.sock`: mixlbctl finds the admin socket as the only
  // one of those in the run directory.
  handoff_ = std::make_unique<HandoffServer>(
      io_, [this](const RegisterRequest& r) { return sockets_->register_sockets(r); });
  try {
    handoff_->start(handoff_path());
  } catch (const std::runtime_error& e) {
    spdlog::warn("no handoff socket ({}); apps can still be adopted (mixlbctl sockets adopt)", e.what());
    handoff_.reset();
    return;
  }
  on_undo("close the handoff socket", [this] { handoff_->stop(); });
  spdlog::info("reuseport selector ready; apps hand their sockets over at {}", handoff_path());
}

std::string Daemon::handoff_path() const { return config_.node.run_dir + "/" + config_.node.name + ".handoff"; }

nlohmann::json Daemon::sockets_request(const nlohmann::json& args) {
  if (!sockets_)
    throw AdminError(config_.sockets.enabled ? "the reuseport selector is not running (see the log at start)"
                                             : "the reuseport selector is off (sockets.enabled = false)");
  const std::string action = args.value("action", std::string("list"));
  auto generation = [&]() -> std::uint32_t {
    if (!args.contains("generation") || !args["generation"].is_number_unsigned())
      throw AdminError("sockets " + action + ": GENERATION must be a generation number");
    return args["generation"].get<std::uint32_t>();
  };
  auto service = [&]() -> std::string {
    if (!args.contains("service")) throw AdminError("sockets " + action + ": which SERVICE? (e.g. tcp/80)");
    return args["service"].get<std::string>();
  };
  nlohmann::json done = nlohmann::json::object();
  if (action == "adopt") {
    if (!args.contains("pid")) throw AdminError("sockets adopt: which process? (--pid PID)");
    std::int32_t pid = 0;
    const std::string text = args["pid"].get<std::string>();
    if (std::from_chars(text.data(), text.data() + text.size(), pid).ec != std::errc{} || pid <= 0)
      throw AdminError("sockets adopt: --pid takes a process id, not " + quote_input(text));
    auto adopted = sockets_->adopt(pid, args.value("ready", std::string("yes")) == "yes");
    if (!adopted) throw AdminError("sockets adopt: " + adopted.error());
    done["adopted"] = nlohmann::json::array();
    for (const auto& r : adopted->registered) {
      nlohmann::json one = {{"service", r.service.to_string()},
                            {"generation", r.generation},
                            {"sockets", r.sockets},
                            {"active", r.active}};
      if (r.switch_ns != 0) one["switch_us"] = static_cast<double>(r.switch_ns) / 1000.0;
      done["adopted"].push_back(std::move(one));
    }
    done["skipped"] = nlohmann::json::array();
    for (const auto& k : adopted->skipped) done["skipped"].push_back({{"fd", k.fd}, {"why", k.why}});
  } else if (action == "switch" || action == "drain") {
    const std::string name = service();
    const std::uint32_t number = generation();
    if (action == "switch") {
      auto r = sockets_->switch_to(name, number);
      if (!r) throw AdminError("sockets switch: " + r.error());
      done["switched"] = {{"service", name}, {"generation", number}, {"switch_us", static_cast<double>(*r) / 1000.0}};
    } else {
      auto r = sockets_->drain(name, number);
      if (!r) throw AdminError("sockets drain: " + r.error());
      done["drained"] = {{"service", name}, {"generation", number}};
    }
  } else if (args.contains("service") || args.contains("generation") || args.contains("pid")) {
    throw AdminError("sockets: SERVICE, GENERATION and --pid go with an action (adopt, switch, drain)");
  }
  nlohmann::json view = sockets_->view();
  view.update(done);
  return view;
}

// Everything that can fail without changing anything, so that a start that
// cannot work stops here: nothing of a running sidecar or of the data path a
// crashed one left is touched.
void Daemon::validate_and_probe() {
  auto lock = InstanceLock::acquire(config_.node.run_dir, config_.node.name);
  if (!lock) throw StartupError(lock.error().message);
  lock_.emplace(std::move(*lock));

  if (!seams_.netlink) {
    if (auto problem = capability_problem(); !problem.empty()) throw StartupError(problem);
    auto bpffs = ensure_bpffs(config_.node.bpffs_dir);
    if (!bpffs) throw StartupError(bpffs.error());
    if (bpffs->mounted)
      spdlog::info("mounted a bpffs on {}: nothing was mounted there (pins on it last until "
                   "reboot)",
                   kBpffsRoot);
    auto nl = RtNetlink::open();
    if (!nl) startup_failed("opening rtnetlink", nl.error());
    own_netlink_ = std::make_unique<RtNetlink>(std::move(*nl));
  }
  netlink_ = seams_.netlink ? seams_.netlink : own_netlink_.get();
  sysctls_ = seams_.sysctls ? seams_.sysctls : &own_sysctls_;

  auto ifindex = netlink_->link_index(config_.node.interface);
  if (!ifindex) startup_failed("interface " + config_.node.interface, ifindex.error());
  ifindex_ = *ifindex;
  auto lo = netlink_->link_index("lo");
  if (!lo) startup_failed("interface lo", lo.error());
  lo_ifindex_ = *lo;
  auto mac = netlink_->link_mac(ifindex_);
  if (!mac) startup_failed("MAC address of " + config_.node.interface, mac.error());
  mac_ = *mac;

  // The node's address: configured, else its own entry in the shared peer
  // list, else the interface's first IPv4 address.
  auto own_entry = std::find_if(config_.peers.begin(), config_.peers.end(),
                                [&](const PeerConfig& p) { return p.name == config_.node.name; });
  if (config_.node.address) {
    address_ = *config_.node.address;
  } else if (own_entry != config_.peers.end()) {
    address_ = own_entry->address;
  } else {
    auto addrs = netlink_->ipv4_addresses(ifindex_);
    if (!addrs) startup_failed("addresses of " + config_.node.interface, addrs.error());
    if (addrs->empty())
      throw StartupError("interface " + config_.node.interface +
                         " has no IPv4 address; set node.address in the configuration");
    address_ = addrs->front().address;
  }
  static_members_ = static_members(config_, address_);
  vips_ = expand_vips(config_.vips);
  table_vips_ = vips_;
  spdlog::info("node {} (id {}) on {} ({}, {}), {} peer(s) {}, {} VIP port(s)", config_.node.name,
               node_id_text(node_id_for(config_.node.name)), config_.node.interface, address_.to_string(),
               format_mac(mac_), static_members_.size() - 1,
               config_.gossip.enabled ? "as gossip seeds" : "as static members", vips_.size());

  // What a predecessor left: a record of what mixlb changed on this host.
  record_path_ = host_record_path(config_.node.run_dir, config_.node.name);
  auto loaded = load_host_record(record_path_);
  if (!loaded)
    throw StartupError(loaded.error() +
                       "; without it mixlb cannot tell its own host changes from the node's: fix "
                       "or remove the file (then `mixlb cleanup` can no longer restore them)");
  const std::uint64_t netns = current_netns();
  if (*loaded && (**loaded).netns != netns) {
    spdlog::warn("the host record {} is from another network namespace (inode {}, this is {}): "
                 "its sysctls, VIPs and neighbour entries went with it; starting a new record",
                 record_path_, (**loaded).netns, netns);
    (*loaded)->sysctls.clear();
    (*loaded)->vips.clear();
    (*loaded)->neighbours.clear();
  }
  if (*loaded) {
    record_ = std::move(**loaded);
    spdlog::info("found the host record of an earlier mixlb ({} sysctl(s), {} VIP(s), {} neighbour "
                 "entr(ies) are mixlb's)",
                 record_.sysctls.size(), record_.vips.size(), record_.neighbours.size());
  }
  record_.node = config_.node.name;
  record_.interface = config_.node.interface;
  record_.netns = netns;
  // Undone last: a first start that fails leaves no record of nothing.
  on_undo("remove an empty host record", [this, existed = loaded->has_value()] {
    if (!existed && record_.host_clean() && program_ && !program_->adopted_maps())
      if (auto ec = remove_host_record(record_path_))
        spdlog::warn("removing {}: {}", record_path_, ec.message());
  });

  // The keyring seals gossip and invalidations; static membership reads it
  // for the invalidations alone.
  if (!config_.gossip.keyring.empty()) {
    try {
      keys_ = read_keyring_file(config_.gossip.keyring);
    } catch (const ConfigError& e) {
      throw StartupError(e.what());
    }
  }
  if (config_.gossip.enabled) {
    std::optional<gossip::Keyring> keyring;
    if (!keys_.empty()) {
      keyring.emplace(config_.gossip.cluster, keys_.front());
      for (std::size_t i = 1; i < keys_.size(); ++i) keyring->add(keys_[i]);
      spdlog::info("gossip is encrypted with {} key(s) from {}", keys_.size(), config_.gossip.keyring);
    } else if (config_.gossip.insecure) {
      spdlog::warn("gossip is not encrypted and not authenticated (gossip.insecure = true): anyone "
                   "who can reach {} can change this cluster's membership",
                   config_.gossip.port);
    } else {
      // Secure by default: plaintext gossip takes an explicit choice.
      throw StartupError(
          "gossip has no keyring (gossip.keyring" +
          (config_.source.empty() ? std::string() : " in " + config_.source) +
          "): make one with `mixlb keygen FILE` and name it there, or set gossip.insecure = true "
          "to run gossip unencrypted and unauthenticated on a closed lab network");
    }
    std::vector<std::uint8_t> metadata;
    try {
      metadata = encode_metadata(self_metadata());
    } catch (const std::length_error& e) {
      throw StartupError(std::string("gossip metadata: ") + e.what());
    }
    try {
      gossip_ = std::make_unique<GossipBridge>(
          io_, config_.node.name, vips_,
          gossip_settings(config_, address_, metadata, std::move(keyring)),
          [this] { schedule_resync(); },
          [this](std::vector<gossip::Key> keys) { keyring_changed(keys); });
      if (auto ec = gossip_->bind())
        startup_failed("gossip on " + gossip_->address().to_string(), ec);
    } catch (const std::invalid_argument& e) {
      throw StartupError(std::string("gossip: ") + e.what());
    }
    on_undo("close the gossip sockets", [this] { gossip_->stop(gossip::StopMode::kQuiet); });
  }

  commands_ = make_admin_commands();
  admin_ = std::make_unique<AdminServer>(io_, config_.node.admin_socket, commands_->handler());
  try {
    admin_->start();
  } catch (const std::runtime_error& e) {
    throw StartupError(e.what());
  }
  on_undo("close the admin socket", [this] { admin_->stop(); });
}

void Daemon::setup_datapath() {
  DatapathSettings settings = datapath_settings(config_);
  auto program = XdpProgram::load(settings);
  if (!program) throw StartupError(program.error().message());
  program_ = std::move(*program);
  on_undo("remove what this instance pinned and attached", [this] { program_->undo_own(); });
  if (program_->adopted_maps()) {
    spdlog::info("adopted pinned maps under {} (connection table kept)", settings.pin_dir);
  } else {
    record_.created_pin_parent =
        record_.created_pin_parent || program_->created_pin_parent();
  }
  record_.pin_dir = settings.pin_dir;
  persist_record();

  // The dry-run copy for `which`: same object and sizes, the live maps.
  DatapathSettings dry_run = settings;
  dry_run.dry_run = true;
  dry_run.share_maps_with = program_.get();
  dry_run.pin_dir.clear();
  auto oracle_program = XdpProgram::load(dry_run);
  if (!oracle_program)
    throw StartupError("dry-run program for 'which': " + oracle_program.error().message());
  dry_run_ = std::move(*oracle_program);
  oracle_ = std::make_unique<FlowOracle>(*dry_run_, ifindex_, mac_);
}

void Daemon::setup_host() {
  // With gossip, members join later; they are expected in the family of
  // this node's address and the seeds.
  const bool v6_nodes = std::any_of(static_members_.begin(), static_members_.end(),
                                    [](const Member& m) { return m.address.is_v6(); });
  host_ = std::make_unique<HostSetup>(*sysctls_, *netlink_, record_, [this] { persist_record(); });
  try {
    host_->apply(host_plan(config_, lo_ifindex_, v6_nodes));
  } catch (const HostSetupError& e) {
    throw StartupError(e.what());
  }
  on_undo("put back the host settings this instance changed", [this] { host_->undo_own(); });
}

// Checks the app's services, each on its own. With gossip the verdicts are
// published: a node serves a VIP port only while that port's service passes
// its check (in every node's tables, including its own), so one failing
// service takes the node out of its ports only. Without gossip they are
// reported in status and the log.
void Daemon::setup_health() {
  health_ = std::make_unique<HealthChecks>(
      io_, [this](const ServiceCheck& check, bool healthy, const std::string& why) {
        const std::string services = fmt::format("{}", fmt::join(check.services, ", "));
        if (healthy)
          spdlog::info("{} healthy ({}: {})", services, check_target(check.config), why);
        else
          spdlog::warn("{} unhealthy ({}: {})", services, check_target(check.config), why);
        if (gossip_) publish_self();
        watch_changes();
      });
  health_->set(service_checks(config_));
  if (phase_ == Phase::kStarting) on_undo("stop the app checks", [this] { health_->stop(); });
}

void Daemon::setup_gossip() {
  if (!gossip_) {
    spdlog::info("gossip is off: the peer list is the member set");
    return;
  }
  gossip_->on_user_event([this](const gossip::UserEventDelivery& e) {
    if (invalidator_ && invalidator_->mode() == InvalidationMode::kGossip) invalidator_->on_gossip_event(e.payload);
  });
  if (auto ec = gossip_->start(self_metadata()))
    startup_failed("gossip on " + gossip_->address().to_string(), ec);
  if (gossip_->joined()) joined_ = true;
}

// --- metrics -----------------------------------------------------------------

// The Prometheus endpoint, unless metrics.listen is off. It binds before
// the data path is touched, so a taken port stops the start having changed
// nothing; it reads the parts only when scraped, once the daemon serves.
void Daemon::setup_metrics() {
  if (!config_.metrics.address) {
    spdlog::info("metrics are off (metrics.listen = off)");
    return;
  }
  auto listen = metrics::parse_listen_endpoint(config_.metrics.listen);
  if (!listen) throw StartupError("metrics.listen: " + listen.error());
  metrics_ = std::make_unique<metrics::MetricsEndpoint>(io_, *listen, metrics_sources());
  try {
    metrics_->start();
  } catch (const std::runtime_error& e) {
    throw StartupError(e.what());
  }
  on_undo("close the metrics endpoint", [this] { metrics_->stop(); });
}

// What a scrape reads, each from the part that has it.
metrics::MetricsSources Daemon::metrics_sources() {
  metrics::MetricsSources s;
  s.node = config_.node.name;
  s.version = MIXLB_VERSION;
  s.datapath = [this] {
    return metrics::read_datapath(program_->maps(), *sync_, table_vips_, keeper_->peers());
  };
  s.pin_dir = datapath_settings(config_).pin_dir;
  s.xdp_mode = [this] { return query_xdp_mode(ifindex_); };
  s.uplink_attached = [this] { return uplink_state_ == "attached"; };
  // One sample per checked service (VIP port), with its check's verdict.
  s.health = [this] {
    std::vector<metrics::ServiceHealth> checks;
    for (const auto& c : health_->view())
      for (const auto& service : c.check.services) checks.push_back({service, c.checker.healthy()});
    return checks;
  };
  s.app_health = [this] {
    if (gossip_) return metrics::app_health_of(gossip_->membership());
    return std::vector<metrics::AppHealth>{{config_.node.name, !health_ || health_->healthy()}};
  };
  s.table_rebuilds = [this] { return resyncs_; };
  s.sockets = [this]() -> std::optional<metrics::SocketsFigures> {
    if (!sockets_) return std::nullopt;
    return sockets_->figures();
  };
  s.lifecycle = [this] {
    metrics::LifecycleFigures l;
    l.sweeps = sweeps_;
    l.swept = {{"udp_idle", swept_.udp_idle}, {"tcp_closing", swept_.tcp_closing}, {"tcp_idle", swept_.tcp_idle}};
    if (close_tracker_) {
      const CloseCounters c = close_tracker_->counters();
      l.closes = {{{"seen", c.seen}, {"deleted", c.deleted}, {"ring_full", c.ring_full}}};
    }
    if (invalidator_) {
      l.invalidation_mode = std::string(to_string(invalidator_->mode()));
      for (const auto& [name, n] : invalidation_counter_list(invalidator_->counters()))
        l.invalidation.emplace_back(std::string(name), n);
      const LatencySummary latency = invalidator_->latency();
      l.latency_samples = latency.samples;
      l.latency_p50_seconds = latency.p50_us / 1e6;
      l.latency_p99_seconds = latency.p99_us / 1e6;
    }
    return l;
  };
  if (gossip_) {
    s.gossip_snapshot = [this](std::function<void(metrics::GossipSnapshotResult)> done) {
      gossip_->snapshot(std::move(done));
    };
  }
  return s;
}

// A reload that changes metrics.listen: the new endpoint listens before the
// old one closes; when the two cannot coexist (the same port on another
// address), the old one closes first and comes back if the new one fails.
// Either way status names the address that listens.
void Daemon::move_metrics(const Config& next) {
  std::unique_ptr<metrics::MetricsEndpoint> moved;
  if (next.metrics.address) {
    auto listen = metrics::parse_listen_endpoint(next.metrics.listen);
    if (!listen) throw AdminError("metrics.listen: " + listen.error());
    if (metrics_ && metrics_->local_endpoint() == *listen) return;
    moved = std::make_unique<metrics::MetricsEndpoint>(io_, *listen, metrics_sources());
    try {
      moved->start();
    } catch (const std::runtime_error&) {
      if (metrics_) metrics_->stop();
      try {
        moved->start();
      } catch (const std::runtime_error& e) {
        try {
          if (metrics_) metrics_->start();
        } catch (const std::runtime_error& again) {
          spdlog::error("{}; metrics are off until the next reload or restart", again.what());
          metrics_.reset();
        }
        throw AdminError(std::string("the metrics endpoint was not moved: ") + e.what());
      }
    }
  }
  if (metrics_) metrics_->stop();
  metrics_ = std::move(moved);
}

// --- membership and tables ---------------------------------------------------

// What this node publishes: its weight (0 when drained or leaving), where to
// forward to it, whether its app passes its check, whether it is stopping
// for a restart, and the VIP ports it serves.
MemberMetadata Daemon::self_metadata() const {
  MemberMetadata m;
  m.weight = drained_ || phase_ == Phase::kLeaving ? 0 : config_.node.weight;
  m.mac = mac_;
  m.address = address_;
  m.restarting = restarting_;
  bool configured = false;
  for (const auto& v : vips_) {
    const bool mine = !v.serving || std::find(v.serving->begin(), v.serving->end(),
                                              config_.node.name) != v.serving->end();
    configured |= mine;
    // Before the checks exist (validate_and_probe sizes the metadata):
    // every port configured here, the most it will ever list.
    if (mine && (!health_ || health_->healthy(v.label))) m.vips.push_back(vip_tag(v.key));
  }
  m.app_healthy = !m.vips.empty() || !configured;
  return m;
}

void Daemon::publish_self() {
  if (gossip_ && gossip_->publish(self_metadata())) schedule_resync();
}

// Before gossip has news (and with nothing known yet) the member set is
// empty: the peer list names seeds, not members.
std::vector<Member> Daemon::desired_members() const {
  if (!gossip_) return static_members_;
  return gossip_->membership().members();
}

// Changes arrive in bursts (a join brings the whole cluster); one rebuild
// after the burst is enough.
void Daemon::schedule_resync() {
  if (gossip_ && gossip_->joined()) joined_ = true;
  if (resync_pending_) return;
  resync_pending_ = true;
  asio::post(io_, [this] { resync(); });
}

void Daemon::resync() {
  resync_pending_ = false;
  if (!joined_ || phase_ == Phase::kStopping) return;
  const std::vector<Member> members = desired_members();
  std::vector<VipEntry> vips = gossip_ ? gossip_->membership().vip_entries() : vips_;
  keeper_->sync(members, mac_);
  std::map<std::string, std::vector<std::string>> before;
  for (const auto& v : vips) before[v.label] = sync_->backends(v.key);
  if (auto r = sync_->apply(members, vips); !r) {
    last_sync_error_ = r.error().message();
    spdlog::error("publishing the tables: {}", last_sync_error_);
    return;
  }
  last_sync_error_.clear();
  table_vips_ = std::move(vips);
  ++resyncs_;
  for (const auto& v : table_vips_) {
    const auto now = sync_->backends(v.key);
    if (now != before[v.label])
      spdlog::info("{}: backends {}", v.label,
                   now.empty() ? "none" : fmt::format("{}", fmt::join(now, ", ")));
  }
  arm_grace_timer();
  watch_changes();
}

// A departed member leaves the node map (and its connections are forgotten)
// when its grace runs out; nothing gossips that moment, so a timer does.
void Daemon::arm_grace_timer() {
  if (!gossip_) return;
  const auto next = gossip_->membership().next_grace_end();
  grace_timer_.cancel();
  if (!next) return;
  grace_timer_.expires_at(*next + std::chrono::milliseconds(10));
  grace_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) schedule_resync();
  });
}

// --- the uplink --------------------------------------------------------------

asio::awaitable<void> Daemon::watch_uplink() {
  while (phase_ == Phase::kServing || phase_ == Phase::kLeaving) {
    uplink_timer_.expires_after(kUplinkCheck);
    boost::system::error_code ec;
    co_await uplink_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (ec || phase_ == Phase::kStopping) co_return;
    check_uplink();
  }
}

// The uplink may vanish (a veth deleted, a device re-created) and someone
// may detach the program; either way no VIP traffic is balanced here any
// more. Say it loudly, show it in status, and attach again once the
// interface is back.
void Daemon::check_uplink() {
  auto ifindex = netlink_->link_index(config_.node.interface);
  if (!ifindex) {
    if (uplink_state_ != "missing")
      spdlog::error("uplink {} is gone ({}): this node balances nothing until it is back",
                    config_.node.interface, ifindex.error().message());
    uplink_state_ = "missing";
    return;
  }
  if (program_->link_state() == XdpProgram::LinkState::kAttached && *ifindex == ifindex_) {
    if (uplink_state_ != "attached") spdlog::info("XDP is attached to {} again", config_.node.interface);
    uplink_state_ = "attached";
    return;
  }
  if (uplink_state_ == "attached")
    spdlog::error("the XDP program is no longer attached to {} (interface re-created or program "
                  "detached by someone else); attaching it again",
                  config_.node.interface);
  uplink_state_ = "detached";
  auto mode = program_->attach(*ifindex, config_.datapath.xdp_mode);
  if (!mode) {
    spdlog::error("re-attaching XDP to {}: {}", config_.node.interface, mode.error().message());
    return;
  }
  const int old = ifindex_;
  ifindex_ = *ifindex;
  if (old != ifindex_) {
    keeper_->set_ifindex(ifindex_);
    oracle_ = std::make_unique<FlowOracle>(*dry_run_, ifindex_, mac_);
    if (auto mac = netlink_->link_mac(ifindex_); mac && *mac != mac_) {
      mac_ = *mac;
      oracle_ = std::make_unique<FlowOracle>(*dry_run_, ifindex_, mac_);
      publish_self();
    }
    keeper_->sync(desired_members(), mac_);
  }
  spdlog::info("XDP attached to {} again in {} mode", config_.node.interface, to_string(*mode));
  uplink_state_ = "attached";
}

// --- the ways out ------------------------------------------------------------

// Everything stays for the next sidecar: the program keeps running through
// its pinned link, on the pinned maps; VIPs, sysctls and neighbour entries
// stay and the record says which are mixlb's.
void Daemon::stop_for_restart() {
  if (phase_ == Phase::kStopping) return;
  if (health_) health_->stop();
  keeper_->stop();
  if (gossip_) {
    restarting_ = true;
    publish_self();
    gossip_->stop(gossip::StopMode::kQuiet);
  }
  phase_ = Phase::kStopping;
  persist_record();
  spdlog::info("stopped for a restart: XDP stays on {} through its pinned link, the maps and "
               "the connection table stay pinned under {}, VIPs and sysctls stay; the next mixlb "
               "adopts them (`mixlbctl leave` or `mixlb cleanup` removes them)",
               config_.node.interface, record_.pin_dir);
  finish();
}

void Daemon::begin_leave(std::string why) {
  if (phase_ != Phase::kServing) return;
  spdlog::info("leaving the cluster ({}): new flows go to other nodes now; established ones are "
               "served until they end, at most {} ms",
               why, config_.node.leave_timeout_ms);
  phase_ = Phase::kLeaving;
  leave_started_ = std::chrono::steady_clock::now();
  leave_state_ = "draining and announcing the leave";
  asio::co_spawn(io_, leave(), log_failure("leave"));
}

// Runs `work` on a thread of its own and resumes when it is done, so a
// blocking call (joining the gossip thread) does not stall the daemon.
asio::awaitable<void> Daemon::off_thread(std::function<void()> work) {
  struct Wait {
    explicit Wait(asio::io_context& io) : timer(io) {}
    asio::steady_timer timer;
    bool done = false;
  };
  auto wait = std::make_shared<Wait>(io_);
  wait->timer.expires_at(asio::steady_timer::time_point::max());
  std::thread worker([this, wait, work = std::move(work)] {
    work();
    asio::post(io_, [wait] {
      wait->done = true;
      wait->timer.cancel();
    });
  });
  boost::system::error_code ec;
  while (!wait->done) co_await wait->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  worker.join();
}

// Drain (weight 0: this node's own tables and its peers' send it no new
// flows), announce the leave, then wait until the node is quiet — no
// connection of the app on a VIP, no VIP packet for kLeaveQuiet — or the
// timeout, and remove everything.
asio::awaitable<void> Daemon::leave() {
  publish_self();
  // The drain takes effect here at once; peers learn it from the leave.
  resync();
  if (gossip_) {
    // Stopping lingers while the leave spreads; the io_context serves on.
    co_await off_thread([this] { gossip_->stop(gossip::StopMode::kLeave); });
  }
  std::vector<VipPort> ports;
  for (const auto& v : config_.vips) {
    if (v.protocol != 6) continue;
    if (v.ports.empty()) ports.push_back({v.address, 0});
    for (auto p : v.ports) ports.push_back({v.address, p});
  }
  LeaveWait wait(leave_started_, std::chrono::milliseconds(config_.node.leave_timeout_ms));
  asio::steady_timer tick(io_);
  for (;;) {
    auto connections = count_vip_connections(ports);
    const auto verdict = wait.sample(std::chrono::steady_clock::now(),
                                     connections ? std::optional(*connections) : std::nullopt,
                                     vip_packets(program_->maps(), *sync_, table_vips_));
    leave_state_ = wait.state();
    if (verdict == LeaveWait::Verdict::kQuiet) {
      spdlog::info("leave: the node is quiet ({})", leave_state_);
      break;
    }
    if (verdict == LeaveWait::Verdict::kTimedOut) {
      spdlog::warn("leave: {} ms passed with {}; removing the data path anyway",
                   config_.node.leave_timeout_ms, leave_state_);
      break;
    }
    tick.expires_after(std::chrono::milliseconds(250));
    co_await tick.async_wait(asio::use_awaitable);
  }
  remove_everything();
  finish();
}

// The host as before the first sidecar: no link, no pins, no VIPs, the
// sysctls and neighbour entries as they were, no record.
void Daemon::remove_everything() {
  if (health_) health_->stop();
  keeper_->stop();
  phase_ = Phase::kStopping;
  program_->detach();
  dry_run_.reset();
  if (sockets_) sockets_->unpin();
  program_->unpin();
  if (record_.created_pin_parent) {
    std::error_code ec;
    std::filesystem::remove(std::filesystem::path(record_.pin_dir).parent_path(), ec);
  }
  auto problems = restore_host(record_, *sysctls_, *netlink_, [this] { persist_record(); });
  if (problems.empty()) {
    if (auto ec = remove_host_record(record_path_))
      spdlog::warn("removing {}: {}", record_path_, ec.message());
    spdlog::info("left the cluster; everything mixlb added to this node has been removed");
  } else {
    exit_code_ = 1;
    spdlog::error("left the cluster, but {} change(s) could not be put back; they stay in {} for "
                  "`mixlb cleanup`",
                  problems.size(), record_path_);
  }
}

void Daemon::finish() {
  grace_timer_.cancel();
  uplink_timer_.cancel();
  sample_timer_.cancel();
  sweep_timer_.cancel();
  signals_.cancel();
  if (admin_) admin_->stop();
  if (handoff_) handoff_->stop();
  if (metrics_) metrics_->stop();
  io_.stop();
}

// --- reload ------------------------------------------------------------------

// Reads the file and the flags again, validates the whole, and applies
// what may change while running; what needs a restart keeps its running
// value and is named in the answer. A file that does not validate changes
// nothing and the error says where.
ReloadResult Daemon::reload() {
  if (phase_ != Phase::kServing) throw AdminError("the node is leaving; nothing to reload");
  if (config_.source.empty())
    throw AdminError("this sidecar was started without --config: there is no file to reload");
  std::vector<const char*> argv{"mixlb"};
  for (const auto& a : args_) argv.push_back(a.c_str());
  std::optional<Config> loaded;
  try {
    std::ostringstream ignored;
    loaded = config_from_args(static_cast<int>(argv.size()), argv.data(), ignored);
  } catch (const ConfigError& e) {
    throw AdminError(std::string("the configuration was not reloaded: ") + e.what());
  }
  if (!loaded) throw AdminError("the command line only asks for --help or --version");
  Config next = std::move(*loaded);
  const ConfigDiff diff = diff_configs(config_, next);

  // What needs a restart keeps its running value.
  for (const std::string& path : diff.restart) {
    if (path == "peer") {
      next.peers = config_.peers;
      continue;
    }
    const KeySpec& k = *find_key(path);
    switch (k.type) {
      case KeyType::kString: k.string(next) = k.string(config_); break;
      case KeyType::kInteger: k.integer(next) = k.integer(config_); break;
      case KeyType::kBoolean: k.boolean(next) = k.boolean(config_); break;
      case KeyType::kAddress: k.address(next) = k.address(config_); break;
      case KeyType::kChoice: k.choose(next, k.chosen(config_)); break;
      case KeyType::kStrings: k.strings(next) = k.strings(config_); break;
    }
  }

  // A new metrics address is bound before anything changes: the kernel may
  // refuse it too.
  if (diff.metrics) move_metrics(next);
  // The host first: the one step the kernel may refuse, before anything
  // else has changed.
  if (diff.vips) apply_vips(next);
  if (diff.logging) configure_logging(next.node.name, next.node.log_level, next.node.log_format);
  // A check whose target is unchanged keeps its verdict (health.h).
  if (diff.health || diff.vips) health_->set(service_checks(next));
  if (next.neighbours.refresh_ms != config_.neighbours.refresh_ms)
    keeper_->set_refresh(std::chrono::milliseconds(next.neighbours.refresh_ms));
  if (gossip_ && next.gossip.flow_grace_ms != config_.gossip.flow_grace_ms)
    gossip_->membership().set_flow_grace(std::chrono::milliseconds(next.gossip.flow_grace_ms));
  const bool weight = next.node.weight != config_.node.weight;
  const bool static_peers = !next.gossip.enabled && diff.peers;
  config_ = std::move(next);
  if (static_peers || (weight && !gossip_)) static_members_ = static_members(config_, address_);
  publish_self();
  schedule_resync();

  if (!diff.empty())
    spdlog::info("reloaded {}: applied {}; needs a restart: {}", config_.source,
                 diff.live.empty() ? "nothing" : fmt::format("{}", fmt::join(diff.live, ", ")),
                 diff.restart.empty() ? "nothing" : fmt::format("{}", fmt::join(diff.restart, ", ")));
  return ReloadResult{config_.source, !diff.empty(), diff.live, diff.restart};
}

// A reload's new VIP list: new addresses onto lo, gone ones off it (if mixlb
// put them there), the serving sets and the published tags, then the
// tables (ClusterSync drops a gone VIP's entry and its connections; the
// others keep their ids, tables and connections).
void Daemon::apply_vips(const Config& next) {
  std::set<Address> before, after;
  for (const auto& v : config_.vips) before.insert(v.address);
  for (const auto& v : next.vips) after.insert(v.address);
  std::vector<Address> added;
  for (const auto& a : after)
    if (!before.contains(a)) added.push_back(a);
  try {
    host_->add_vips(lo_ifindex_, added);
    for (const auto& a : before)
      if (!after.contains(a)) host_->remove_vip(lo_ifindex_, a);
  } catch (const HostSetupError& e) {
    throw AdminError(std::string("the VIPs were not changed: ") + e.what());
  }
  vips_ = expand_vips(next.vips);
  table_vips_ = vips_;
  if (gossip_) gossip_->membership().set_vips(vips_);
}

// --- admin -------------------------------------------------------------------

DrainResult Daemon::set_drained(bool drained) {
  if (!gossip_)
    throw AdminError("drain needs gossip membership (gossip.enabled is false): set this node's "
                     "weight to 0 in every node's peer list instead");
  if (phase_ != Phase::kServing) throw AdminError("the node is leaving");
  if (!drained && config_.node.weight == 0)
    throw AdminError("node.weight is 0 in the configuration: there is no weight to restore");
  drained_ = drained;
  publish_self();
  return {config_.node.name, drained_, self_metadata().weight};
}

LeaveResult Daemon::leave_command() {
  if (phase_ == Phase::kLeaving) return {config_.node.name, true, std::nullopt, leave_state_};
  begin_leave("mixlbctl leave");
  return {config_.node.name, true, config_.node.leave_timeout_ms, std::nullopt};
}

asio::awaitable<MembersResult> Daemon::members(std::vector<std::string> states) {
  if (!gossip_)
    throw AdminError("gossip is off (gossip.enabled = false): status lists the static members");
  // The gossip thread answers by posting back; a timer bounds the wait.
  struct Wait {
    explicit Wait(asio::io_context& io) : timer(io) {}
    asio::steady_timer timer;
    std::optional<GossipBridge::SnapshotResult> result;
  };
  auto wait = std::make_shared<Wait>(io_);
  wait->timer.expires_after(std::chrono::seconds(1));
  gossip_->snapshot([wait](GossipBridge::SnapshotResult r) {
    wait->result = std::move(r);
    wait->timer.cancel();
  });
  boost::system::error_code ec;
  co_await wait->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  std::optional<gossip::TransportSnapshot> snapshot;
  std::string error = "no answer within 1 s";
  if (wait->result && *wait->result) snapshot = std::move(**wait->result);
  if (wait->result && !*wait->result) error = wait->result->error().message();
  MembersResult out =
      members_result(MembersView{config_.node.name, config_.gossip.cluster,
                                 gossip_->address().to_string(), gossip_->membership(), snapshot, error});
  if (!states.empty()) keep_member_states(out, std::move(states));
  co_return out;
}

StatsResult Daemon::stats() {
  StatsResult out = stats_result(
      NodeCountersView{config_.node.name, program_->maps(), *sync_, table_vips_, keeper_->peers()});
  // The sweeper's work, beside the data path's own connection-table events.
  auto& events = out.counters.events;
  events["ct_sweeps"] = sweeps_;
  events["ct_swept_udp_idle"] = swept_.udp_idle;
  events["ct_swept_tcp_closing"] = swept_.tcp_closing;
  events["ct_swept_tcp_idle"] = swept_.tcp_idle;
  if (close_tracker_) {
    const CloseCounters c = close_tracker_->counters();
    events["close_seen"] = c.seen;
    events["close_deleted"] = c.deleted;
    events["close_ring_full"] = c.ring_full;
  }
  if (invalidator_) {
    for (const auto& [name, value] : invalidation_counter_list(invalidator_->counters()))
      events["inval_" + std::string(name)] = value;
    out.invalidation = std::string(to_string(invalidator_->mode()));
    if (invalidator_->mode() != InvalidationMode::kOff)
      out.invalidation_apply = invalidator_->applies_in_kernel() ? "kernel" : "per_flow";
    if (const LatencySummary l = invalidator_->latency(); l.samples > 0)
      out.invalidation_latency = {{"p50_us", static_cast<std::uint64_t>(l.p50_us)},
                                  {"p99_us", static_cast<std::uint64_t>(l.p99_us)},
                                  {"samples", l.samples}};
  }
  return out;
}

StatusResult Daemon::status() {
  StatusResult out;
  static_cast<StatsResult&>(out) = stats();
  out.interface = config_.node.interface;
  out.ifindex = ifindex_;
  const auto mode = query_xdp_mode(ifindex_);
  out.xdp_mode = mode ? std::string(to_string(*mode)) : std::string("detached");
  out.uplink = uplink_state_;
  out.address = address_.to_string();
  out.mac = format_mac(mac_);
  out.maglev_table_size = config_.datapath.maglev_table_size;
  out.metrics = metrics_ ? metrics::to_string(metrics_->local_endpoint()) : "off";
  out.phase = phase_ == Phase::kLeaving ? "leaving" : "serving";
  if (phase_ == Phase::kLeaving) out.leave = leave_state_;
  out.instance = InstanceInfo{::getpid(),
                              lock_ ? lock_->path() : std::string(),
                              record_path_,
                              program_->adopted_maps(),
                              program_->adopted_link(),
                              std::string(to_string(config_.node.on_stop))};
  AppCheckInfo& health = out.health.emplace();
  for (const auto& c : health_->view())
    health.checks.push_back({check_target(c.check.config), c.check.services, c.checker.healthy(),
                             c.checker.last_result()});
  if (!health.checks.empty()) {
    health.kind = std::string(to_string(config_.health.kind));
    health.target = fmt::format("{} check(s)", health.checks.size());
    health.healthy = health_->healthy();
    health.last = health_->last_result();
  }
  GossipInfo& g = out.gossip.emplace();
  if (gossip_) {
    std::size_t alive = 0;
    for (const auto& [name, r] : gossip_->membership().records())
      alive += r.state == gossip::MemberState::kAlive || r.state == gossip::MemberState::kSuspect;
    g.enabled = true;
    g.address = gossip_->address().to_string();
    g.cluster = config_.gossip.cluster;
    g.encrypted = !config_.gossip.keyring.empty();
    g.joined = joined_;
    g.members_alive = alive;
    g.drained = drained_ || config_.node.weight == 0;
    g.flow_grace_ms = config_.gossip.flow_grace_ms;
    g.table_rebuilds = resyncs_;
    g.user_events = gossip_->user_events();
    g.last_sync_error = last_sync_error_;
  }
  out.nodes = node_rows(keeper_->peers());
  const auto& events = out.counters.events;
  auto event = [&](const char* name) {
    const auto it = events.find(name);
    return it == events.end() ? std::uint64_t{0} : it->second;
  };
  out.conntrack = ConntrackCounts{event("ct_hit"), event("ct_miss"), event("ct_insert"),
                                  event("ct_insert_fail")};
  return out;
}

AdminAnswer Daemon::monitor(const std::string& level) {
  const auto rank = log_level_rank(level);  // the command table allows only kLogLevels
  auto stream = monitor_->subscribe(rank.value_or(2));
  return AdminAnswer(nlohmann::json(MonitorStarted{config_.node.name, level}), std::move(stream));
}

// A key request changed this node's keyring (its own or another member's):
// the file follows, so a restart comes back with the keys the cluster uses.
void Daemon::keyring_changed(const std::vector<gossip::Key>& keys) {
  keys_ = keys;
  if (invalidator_) invalidator_->set_keys(keys);
  std::vector<std::string> ids;
  for (const auto& k : keys) ids.push_back(gossip::key_id_to_hex(gossip::key_id(k)));
  if (auto ec = write_keyring_file(config_.gossip.keyring, keys)) {
    spdlog::error("gossip keys are now {} (primary first), but rewriting {} failed: {}; a restart "
                  "would come back with the old keys",
                  fmt::join(ids, ", "), config_.gossip.keyring, ec.message());
    return;
  }
  spdlog::info("gossip keys are now {} (primary first); {} rewritten", fmt::join(ids, ", "),
               config_.gossip.keyring);
}

asio::awaitable<KeysResult> Daemon::keys(std::string op, std::optional<std::string> key_text) {
  KeysResult out;
  out.op = op;
  std::optional<gossip::Key> key;
  if (key_text) {
    auto parsed = gossip::parse_key(*key_text);
    if (!parsed) throw AdminError("keys: KEY must be 64 hex digits (a key of 32 bytes)");
    key = *parsed;
  }
  if (op == "generate") {
    if (key) throw AdminError("keys generate takes no KEY");
    const gossip::Key fresh = gossip::generate_key();
    out.key = gossip::key_to_hex(fresh);
    out.key_id = gossip::key_id_to_hex(gossip::key_id(fresh));
    out.ok = true;
    co_return out;
  }
  if (!gossip_) throw AdminError("keys needs gossip (gossip.enabled is false)");
  if (config_.gossip.keyring.empty())
    throw AdminError("gossip runs without a keyring (gossip.insecure = true): there are no keys to "
                     "change; a keyring needs a restart with gossip.keyring set");
  const gossip::KeyOp kop = op == "list"      ? gossip::KeyOp::kList
                            : op == "install" ? gossip::KeyOp::kInstall
                            : op == "use"     ? gossip::KeyOp::kUse
                                              : gossip::KeyOp::kRemove;
  if (kop == gossip::KeyOp::kList && key) throw AdminError("keys list takes no KEY");
  if (kop != gossip::KeyOp::kList && !key) throw AdminError(fmt::format("keys {} needs a KEY", op));
  if (key) out.key_id = gossip::key_id_to_hex(gossip::key_id(*key));

  // The gossip thread answers by posting back (at most the request's
  // timeout later); the timer is only the wait.
  struct Wait {
    explicit Wait(asio::io_context& io) : timer(io) {}
    asio::steady_timer timer;
    std::optional<GossipBridge::KeyRequestResult> result;
  };
  auto wait = std::make_shared<Wait>(io_);
  wait->timer.expires_at(asio::steady_timer::time_point::max());
  gossip_->key_request(kop, key, [wait](GossipBridge::KeyRequestResult r) {
    wait->result = std::move(r);
    wait->timer.cancel();
  });
  boost::system::error_code ec;
  while (!wait->result) co_await wait->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  if (!*wait->result) throw AdminError(fmt::format("keys {}: {}", op, wait->result->error().message()));
  const gossip::KeyResult& r = **wait->result;
  out.ok = r.ok();
  out.timed_out = r.timed_out;
  out.elapsed_s = std::chrono::duration<double>(r.elapsed).count();
  for (const auto& a : r.answers) {
    KeyMemberAnswer m;
    m.member = a.member;
    m.outcome = std::string(gossip::to_string(a.outcome));
    if (a.outcome == gossip::KeyOutcome::kFailed) m.error = a.error.message();
    for (const auto& id : a.keys) m.keys.push_back(gossip::key_id_to_hex(id));
    out.members.push_back(std::move(m));
  }
  for (const auto& k : gossip_->keys()) out.local_keys.push_back(gossip::key_id_to_hex(gossip::key_id(k)));
  co_return out;
}

// The view ChangeWatch compares; gossip's records, or only this node's check.
void Daemon::watch_changes() {
  ClusterView view;
  view.self = config_.node.name;
  if (gossip_) {
    for (const auto& [name, r] : gossip_->membership().records()) {
      WatchedMember m;
      m.state = std::string(gossip::to_string(r.state));
      if (r.metadata) {
        m.weight = r.metadata->weight;
        m.app_healthy = r.metadata->app_healthy;
        m.restarting = r.metadata->restarting;
      }
      view.members.emplace(name, std::move(m));
    }
  }
  if (!health_->view().empty()) {
    view.self_app_healthy = health_->healthy();
    view.self_app_reason = health_->last_result();
  }
  for (const auto& e : changes_.update(std::move(view), event_time(std::chrono::system_clock::now())))
    monitor_->publish(e);
}

asio::awaitable<void> Daemon::sample_loop() {
  while (phase_ == Phase::kServing || phase_ == Phase::kLeaving) {
    try {
      rates_.record(CounterRates::Clock::now(), rate_sample(stats()));
    } catch (const std::exception& e) {
      spdlog::debug("sampling the counters for `vips`: {}", e.what());
    }
    watch_changes();
    sample_timer_.expires_after(std::chrono::seconds(1));
    boost::system::error_code ec;
    co_await sample_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
  }
}

// g++ 12 can inline Asio's frame allocator into a coroutine's ramp but not
// its matching operator delete, then reports the pair as mismatched (see
// admin_server.cc); the pair is Asio's own.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

metrics::ConntrackWalker& Daemon::conntrack_walker() {
  if (!ct_walker_) {
    auto fd = open_pinned_conntrack(record_.pin_dir);
    if (!fd) throw std::runtime_error(fd.error().message());
    ct_walker_ = std::make_unique<metrics::ConntrackWalker>(std::move(*fd), metrics::ConntrackCensusOptions{});
  }
  return *ct_walker_;
}

asio::awaitable<void> Daemon::sweep_loop() {
  using std::chrono::milliseconds;
  for (;;) {
    // Read each round: a reload may change any of it.
    const ConntrackSection c = config_.conntrack;
    sweep_timer_.expires_after(milliseconds(c.sweep_interval_ms != 0 ? c.sweep_interval_ms : 1000));
    boost::system::error_code ec;
    co_await sweep_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    if (c.sweep_interval_ms == 0 || config_.conntrack.sweep_interval_ms == 0) continue;
    const SweepRules rules{.udp_idle_ns = c.udp_idle_ms * 1'000'000ull,
                           .tcp_closing_idle_ns = c.tcp_closing_idle_ms * 1'000'000ull,
                           .tcp_idle_ns = c.tcp_idle_ms * 1'000'000ull};
    DpResult<SweepResult> result = std::unexpected(DatapathError{"", {}});
    try {
      result = co_await conntrack_walker().run<SweepResult>(
          [rules](int fd) { return sweep_conntrack(fd, rules); }, "the sweep of the connection table");
    } catch (const std::runtime_error& e) {
      result = std::unexpected(DatapathError{e.what(), std::make_error_code(std::errc::io_error)});
    }
    if (!result) {
      ct_walker_.reset();  // the pin may have been replaced: open it again next time
      if (result.error().message() != sweep_problem_) {
        sweep_problem_ = result.error().message();
        spdlog::warn("conntrack: sweep failed: {}", sweep_problem_);
      }
      continue;
    }
    sweep_problem_.clear();
    ++sweeps_;
    swept_.walked = result->walked;
    swept_.udp_idle += result->udp_idle;
    swept_.tcp_closing += result->tcp_closing;
    swept_.tcp_idle += result->tcp_idle;
    swept_.kept_late += result->kept_late;
    swept_.took_ns = result->took_ns;
    spdlog::log(result->removed() != 0 ? spdlog::level::info : spdlog::level::debug,
                "conntrack: swept {} idle entries of {} (udp {}, tcp closing {}, tcp {}) in {} ms",
                result->removed(), result->walked, result->udp_idle, result->tcp_closing,
                result->tcp_idle, result->took_ns / 1'000'000);
  }
}

// `ct`: the filters are read here, the walk runs on ct_walker_'s thread.
asio::awaitable<CtResult> Daemon::conntrack_entries(nlohmann::json args) {
  CtFilter filter;
  CtResult out;
  out.node = config_.node.name;
  const auto text = [&](const char* name) -> std::optional<std::string> {
    const auto words = option_words(args, name);
    if (words.empty()) return std::nullopt;
    return words.front();
  };
  if (auto vip = text("vip")) {
    if (auto problem = parse_ct_vip(*vip, filter)) throw AdminError(*problem);
    out.filter.push_back("vip " + *vip);
  }
  if (auto node = text("node")) {
    filter.node_id = node_id_for(*node);
    out.filter.push_back("node " + *node);
  }
  if (auto client = text("client")) {
    filter.client = Address::parse(*client);
    if (!filter.client) throw AdminError("--client: '" + *client + "' is not an IPv4 or IPv6 address");
    out.filter.push_back("client " + *client);
  }
  std::size_t limit = 50;
  if (auto n = text("limit")) {
    std::size_t value = 0;
    const auto [end, ec] = std::from_chars(n->data(), n->data() + n->size(), value);
    if (ec != std::errc() || end != n->data() + n->size() || value > 100000)
      throw AdminError("--limit: '" + *n + "' is not a number from 0 to 100000");
    limit = value;
  }
  metrics::ConntrackWalker* walker = nullptr;
  try {
    walker = &conntrack_walker();
  } catch (const std::runtime_error& e) {
    throw AdminError(e.what());
  }
  auto listing = co_await walker->run<CtListing>(
      [filter, limit](int fd) { return list_conntrack(fd, filter, limit); }, "the walk of the connection table");
  if (!listing) {
    ct_walker_.reset();  // the pin may have been replaced: open it again next time
    throw AdminError(listing.error().message());
  }
  std::map<std::uint32_t, std::string> names;
  for (const auto& p : keeper_->peers()) names[p.member.id] = p.member.name;
  out.entries = listing->entries;
  out.capacity = listing->capacity;
  out.matched = listing->matched;
  const std::uint64_t now = listing->now_ns;
  for (const CtEntry& e : listing->shown) {
    CtRow row;
    row.client = flow_client(e.key);
    row.vip = flow_vip(e.key);
    row.proto = e.key.proto == 6 ? "tcp" : e.key.proto == 17 ? "udp" : std::to_string(e.key.proto);
    const auto name = names.find(e.value.node_id);
    row.node = name != names.end() ? name->second : node_id_text(e.value.node_id);
    row.state = std::string(metrics::to_string(
        metrics::classify_flow(e.key, e.value, now, metrics::ConntrackCensusOptions{}.active_window)));
    row.flags = ct_flags_text(e.value.flags);
    if (e.value.created_s != 0 && now / 1'000'000'000ull >= e.value.created_s)
      row.age_s = static_cast<double>(now / 1'000'000'000ull - e.value.created_s);
    row.idle_s = e.value.last_seen_ns >= now ? 0.0 : static_cast<double>(now - e.value.last_seen_ns) / 1e9;
    out.rows.push_back(std::move(row));
  }
  co_return out;
}

#pragma GCC diagnostic pop

// One handler per row of the command table (admin/commands.h);
// AdminCommands checks that at start-up and checks each request's
// arguments against the row before a handler runs.
std::unique_ptr<AdminCommands> Daemon::make_admin_commands() {
  using Json = nlohmann::json;
  std::vector<AdminCommands::Handler> handlers;
  auto reply = [&](std::string name, AdminCommands::Reply run) {
    handlers.push_back({std::move(name), std::move(run)});
  };
  reply("status", [this](const Json&) { return Json(status()); });
  reply("stats", [this](const Json&) { return Json(stats()); });
  reply("vips", [this](const Json&) { return Json(vips_result(stats(), rates_)); });
  reply("drain", [this](const Json&) { return Json(set_drained(true)); });
  reply("undrain", [this](const Json&) { return Json(set_drained(false)); });
  reply("leave", [this](const Json&) { return Json(leave_command()); });
  reply("reload", [this](const Json&) { return Json(reload()); });
  reply("sockets", [this](const Json& args) { return sockets_request(args); });
  reply("which", [this](const Json& args) {
    ProbeFlow flow;
    try {
      flow = parse_which_args(args);
    } catch (const std::invalid_argument& e) {
      throw AdminError(e.what());
    }
    std::vector<Member> members;
    for (const auto& p : keeper_->peers()) members.push_back(p.member);
    return oracle_->which(flow, members, table_vips_, *sync_);
  });
  handlers.push_back({"members", AdminCommands::AsyncReply([this](Json args) -> asio::awaitable<Json> {
                        co_return Json(co_await members(option_words(args, "status")));
                      })});
  handlers.push_back({"ct", AdminCommands::AsyncReply([this](Json args) -> asio::awaitable<Json> {
                        co_return Json(co_await conntrack_entries(std::move(args)));
                      })});
  handlers.push_back({"keys", AdminCommands::AsyncReply([this](Json args) -> asio::awaitable<Json> {
                        std::optional<std::string> key;
                        if (args.contains("key")) {
                          if (!args["key"].is_string()) throw AdminError("keys: KEY must be a string");
                          key = args["key"].get<std::string>();
                        }
                        co_return Json(co_await keys(args["op"].get<std::string>(), key));
                      })});
  handlers.push_back({"monitor", AdminCommands::Stream([this](const Json& args) {
                        const auto level = option_words(args, "level");
                        return monitor(level.empty() ? "info" : level.front());
                      })});
  return std::make_unique<AdminCommands>(std::move(handlers));
}

asio::awaitable<AdminAnswer> Daemon::handle_admin(std::string cmd, nlohmann::json args) {
  co_return co_await commands_->handle(std::move(cmd), std::move(args));
}

}  // namespace mixlb
