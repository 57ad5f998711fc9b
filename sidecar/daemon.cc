#include "daemon.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <cstring>
#include <set>

#include "abi.h"
#include "admin_protocol.h"
#include "admin_server.h"
#include "health.h"
#include "node_id.h"
#include "sysctl.h"

namespace mixlb {
namespace {

std::string mac_string(const std::optional<MacAddress>& mac) {
  return mac ? format_mac(*mac) : std::string("-");
}

mixlb_mac mac_key(const MacAddress& mac) {
  mixlb_mac key{};
  std::memcpy(key.addr, mac.data(), sizeof(key.addr));
  return key;
}

[[noreturn]] void startup_failed(const std::string& what, std::error_code ec) {
  throw StartupError(what + ": " + ec.message());
}

}  // namespace

Daemon::Daemon(Config config)
    : config_(std::move(config)), signals_(io_, SIGTERM, SIGINT), neighbour_timer_(io_) {}

Daemon::~Daemon() { undo_all(); }

void Daemon::on_undo(std::string what, std::function<void()> undo) {
  undo_.emplace_back(std::move(what), std::move(undo));
}

void Daemon::undo_all() {
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

int Daemon::run() {
  try {
    start();
  } catch (...) {
    undo_all();
    throw;
  }
  signals_.async_wait([this](const boost::system::error_code& ec, int signo) {
    if (ec) return;
    spdlog::info("signal {} received: shutting down", signo);
    stop();
  });
  io_.run();
  undo_all();
  spdlog::info("stopped; everything mixlb added has been removed");
  return 0;
}

void Daemon::stop() {
  if (stopping_) return;
  stopping_ = true;
  neighbour_timer_.cancel();
  if (admin_) admin_->stop();
  io_.stop();
}

void Daemon::start() {
  auto nl = RtNetlink::open();
  if (!nl) startup_failed("opening rtnetlink", nl.error());
  netlink_.emplace(std::move(*nl));

  auto ifindex = netlink_->link_index(config_.interface);
  if (!ifindex) startup_failed("interface " + config_.interface, ifindex.error());
  ifindex_ = *ifindex;
  auto lo = netlink_->link_index("lo");
  if (!lo) startup_failed("interface lo", lo.error());
  lo_ifindex_ = *lo;
  auto mac = netlink_->link_mac(ifindex_);
  if (!mac) startup_failed("MAC address of " + config_.interface, mac.error());
  mac_ = *mac;

  // The node's address: configured, else its own entry in the shared peer
  // list, else the interface's first IPv4 address.
  auto own_entry = std::find_if(config_.peers.begin(), config_.peers.end(),
                                [&](const PeerConfig& p) { return p.name == config_.node_name; });
  if (config_.node_address) {
    address_ = *config_.node_address;
  } else if (own_entry != config_.peers.end()) {
    address_ = own_entry->address;
  } else {
    auto addrs = netlink_->ipv4_addresses(ifindex_);
    if (!addrs) startup_failed("addresses of " + config_.interface, addrs.error());
    if (addrs->empty())
      throw StartupError("interface " + config_.interface +
                         " has no IPv4 address; set node.address in the configuration");
    address_ = addrs->front().address;
  }

  PeerState self;
  self.member = Member{config_.node_name, node_id_for(config_.node_name), address_,
                       config_.node_weight, true};
  self.self = true;
  self.mac = mac_;
  self.neighbour = "self";
  peers_.push_back(self);
  for (const auto& p : config_.peers) {
    if (p.name == config_.node_name) continue;
    PeerState peer;
    peer.member = Member{p.name, node_id_for(p.name), p.address, p.weight, false};
    peers_.push_back(peer);
  }
  vips_ = expand_vips(config_.vips);
  spdlog::info("node {} (id {}) on {} ({}, {}), {} peer(s), {} VIP port(s)", config_.node_name,
               self.member.id, config_.interface, address_.to_string(), format_mac(mac_),
               peers_.size() - 1, vips_.size());

  setup_kernel();
  setup_datapath();
  setup_neighbours();
  setup_health();

  admin_ = std::make_unique<AdminServer>(
      io_, config_.admin_socket,
      [this](std::string_view cmd, const nlohmann::json& args) { return handle_admin(cmd, args); });
  try {
    admin_->start();
  } catch (const std::runtime_error& e) {
    throw StartupError(e.what());
  }
  on_undo("close the admin socket", [this] { admin_->stop(); });
  spdlog::info("serving; admin socket {}", config_.admin_socket);
}

void Daemon::setup_kernel() {
  // The VIP lives on lo; the node must neither answer ARP for it on the
  // uplink nor use it as an ARP source there. bpf_fib_lookup answers only
  // when forwarding is on for the ingress device; the uplink's own key is
  // enough, so the rest of the node keeps its routing settings.
  //
  // Forwarding goes to a node in its own address's family, and
  // bpf_fib_lookup checks the forwarding switch of that family. IPv6
  // forwarding is turned on only when some node address is IPv6: on an
  // interface that forwards, the kernel stops taking router advertisements
  // (with the default accept_ra=1), which a v4-only cluster has no reason to
  // risk. The VIPs' own family does not matter: the packet is not routed.
  struct Setting {
    const char* family;
    const char* scope;  // "all" or, when null, the uplink
    const char* name;
    const char* value;
  };
  std::vector<Setting> settings = {
      {"ipv4", "all", "arp_ignore", "1"},   {"ipv4", "all", "arp_announce", "2"},
      {"ipv4", nullptr, "arp_ignore", "1"}, {"ipv4", nullptr, "arp_announce", "2"},
      {"ipv4", nullptr, "forwarding", "1"},
  };
  const bool v6_nodes = std::any_of(peers_.begin(), peers_.end(),
                                    [](const PeerState& p) { return p.member.address.is_v6(); });
  if (v6_nodes) settings.push_back({"ipv6", nullptr, "forwarding", "1"});
  auto guard = std::make_shared<SysctlGuard>();
  on_undo("restore sysctls", [guard] { guard->restore(); });
  for (const auto& s : settings) {
    auto key = SysctlKey::interface_conf(s.family, s.scope ? s.scope : config_.interface, s.name);
    if (!key) startup_failed(std::string("sysctl key for ") + s.name, key.error());
    if (auto ec = guard->set(*key, s.value)) startup_failed("setting " + key->name(), ec);
  }

  // Each VIP address goes on lo once, however many ports and protocols it has.
  std::set<Address> addresses;
  for (const auto& v : config_.vips) addresses.insert(v.address);
  for (const Address& a : addresses) {
    const int prefix = a.is_v6() ? 128 : 32;
    auto change = netlink_->add_address(lo_ifindex_, a, prefix);
    if (!change) startup_failed("adding VIP " + a.to_string() + " to lo", change.error());
    if (*change == AddressChange::kAdded) {
      on_undo("remove VIP " + a.to_string() + " from lo", [this, a, prefix] {
        if (auto ec = netlink_->delete_address(lo_ifindex_, a, prefix))
          spdlog::warn("removing VIP {} from lo: {}", a.to_string(), ec.message());
      });
    } else {
      spdlog::info("VIP {} was already on lo; it will be left there", a.to_string());
    }
  }
}

void Daemon::setup_datapath() {
  DatapathSettings settings;
  settings.self_node_id = node_id_for(config_.node_name);
  settings.ring_size = config_.maglev_table_size;
  settings.max_vips = config_.max_vips;
  settings.conntrack_entries = config_.conntrack_entries;
  settings.max_nodes = config_.max_nodes;
  settings.pin_dir = config_.bpffs_dir + "/" + config_.node_name;
  auto program = XdpProgram::load(settings);
  if (!program) throw StartupError(program.error().message());
  program_ = std::move(*program);
  on_undo("unpin maps", [this] { program_->unpin(); });
  if (program_->adopted_maps())
    spdlog::info("adopted pinned maps under {} (connection table kept)", settings.pin_dir);

  // The dry-run copy for `which`: same object and sizes, the live maps.
  DatapathSettings dry_run = settings;
  dry_run.dry_run = true;
  dry_run.share_maps_with = program_.get();
  dry_run.pin_dir.clear();
  auto oracle_program = XdpProgram::load(dry_run);
  if (!oracle_program) {
    throw StartupError("dry-run program for 'which': " + oracle_program.error().message());
  }
  dry_run_ = std::move(*oracle_program);
  oracle_ = std::make_unique<FlowOracle>(*dry_run_, ifindex_, mac_);

  sync_ = std::make_unique<ClusterSync>(program_->maps(), config_.max_vips);
  if (auto r = sync_->apply(members(), vips_); !r) throw StartupError(r.error().message());

  auto mode = program_->attach(ifindex_, config_.xdp_mode);
  if (!mode) throw StartupError(mode.error().message() + " on " + config_.interface);
  on_undo("detach XDP", [this] { program_->detach(); });
  if (*mode == AttachMode::kGeneric)
    spdlog::warn("XDP runs in generic mode on {}: correct but slower than native",
                 config_.interface);
  spdlog::info("XDP attached to {} in {} mode", config_.interface, to_string(*mode));
}

// Checks the node's own app. Its verdict is what this node will publish as
// "serving" to the cluster; until membership carries it, it is reported in
// status and the log.
void Daemon::setup_health() {
  if (config_.health_kind == "none") return;
  HealthCheckConfig check;
  check.kind = config_.health_kind == "http" ? HealthCheckConfig::Kind::kHttp : HealthCheckConfig::Kind::kTcp;
  check.host = config_.health_address->to_string();
  check.port = static_cast<std::uint16_t>(config_.health_port);
  check.path = config_.health_path;
  check.interval = std::chrono::milliseconds(config_.health_interval_ms);
  check.timeout = std::chrono::milliseconds(config_.health_timeout_ms);
  check.rise = config_.health_rise;
  check.fall = config_.health_fall;
  health_ = std::make_unique<HealthChecker>(io_, check, [](bool healthy, const std::string& why) {
    if (healthy)
      spdlog::info("app is healthy ({})", why);
    else
      spdlog::warn("app is unhealthy: {}", why);
  });
  health_->start();
  on_undo("stop the app check", [this] { health_->stop(); });
}

void Daemon::setup_neighbours() {
  for (auto& p : peers_) {
    if (p.self) continue;
    auto setup = netlink_->add_managed_neighbour(ifindex_, p.member.address);
    if (!setup) {
      spdlog::warn("neighbour entry for {} ({}): {}; will keep asking the kernel to resolve it",
                   p.member.name, p.member.address.to_string(), setup.error().message());
      continue;
    }
    p.managed_neighbour = setup->managed;
    if (setup->created) {
      const Address a = p.member.address;
      on_undo("delete neighbour " + a.to_string(), [this, a] {
        if (auto ec = netlink_->delete_neighbour(ifindex_, a);
            ec && ec != std::errc::no_such_file_or_directory)
          spdlog::warn("deleting neighbour {}: {}", a.to_string(), ec.message());
      });
    }
  }
  on_undo("forget peer MACs", [this] {
    for (auto& p : peers_)
      if (!p.self && p.mac) {
        if (auto r = program_->maps().remove_peer_mac(mac_key(*p.mac)); !r)
          spdlog::warn("{}", r.error().message());
      }
  });
  refresh_neighbours();
  schedule_neighbour_refresh();
}

void Daemon::schedule_neighbour_refresh() {
  neighbour_timer_.expires_after(std::chrono::milliseconds(config_.neighbour_refresh_ms));
  neighbour_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopping_) return;
    refresh_neighbours();
    schedule_neighbour_refresh();
  });
}

// Reads each peer's neighbour entry: a resolved MAC goes into the peer-MAC
// map (frames from it are not balanced again); an unresolved entry that the
// kernel does not manage gets a resolution kick.
void Daemon::refresh_neighbours() {
  for (auto& p : peers_) {
    if (p.self) continue;
    auto n = netlink_->get_neighbour(ifindex_, p.member.address);
    if (!n) {
      p.neighbour = "none";
      if (auto ec = netlink_->kick_neighbour(ifindex_, p.member.address))
        spdlog::debug("kicking neighbour {}: {}", p.member.address.to_string(), ec.message());
      continue;
    }
    p.neighbour = n->state_name();
    if (!n->resolved() || !n->mac) {
      if (!n->managed()) {
        if (auto ec = netlink_->kick_neighbour(ifindex_, p.member.address))
          spdlog::debug("kicking neighbour {}: {}", p.member.address.to_string(), ec.message());
      }
      continue;
    }
    if (p.mac == n->mac) continue;
    if (p.mac) {
      if (auto r = program_->maps().remove_peer_mac(mac_key(*p.mac)); !r)
        spdlog::warn("{}", r.error().message());
    }
    if (auto r = program_->maps().set_peer_mac(mac_key(*n->mac), p.member.id); !r) {
      spdlog::warn("{}", r.error().message());
      continue;
    }
    spdlog::info("peer {} ({}) is at {}", p.member.name, p.member.address.to_string(),
                 format_mac(*n->mac));
    p.mac = n->mac;
  }
}

std::vector<Member> Daemon::members() const {
  std::vector<Member> out;
  for (const auto& p : peers_) out.push_back(p.member);
  return out;
}

// Counters: the global ones, and per VIP its totals and its (VIP, node) row.
nlohmann::json Daemon::stats() {
  nlohmann::json out;
  out["node"] = config_.node_name;
  out["node_id"] = node_id_for(config_.node_name);

  auto counters = program_->maps().counters();
  if (!counters) throw std::runtime_error(counters.error().message());
  nlohmann::json events = nlohmann::json::object();
  for (std::size_t i = 0; i < counters->events.size(); ++i)
    events[std::string(kCounterNames[i])] = counters->events[i];
  nlohmann::json drops = nlohmann::json::object();
  for (std::size_t r = 1; r < counters->drops.size(); ++r)
    drops[std::string(kDropReasonNames[r])] = counters->drops[r];
  nlohmann::json fib = nlohmann::json::object();
  for (std::size_t code = 0; code < counters->fib_rets.size(); ++code)
    if (counters->fib_rets[code] != 0)
      fib[fib_result_name(static_cast<unsigned>(code))] = counters->fib_rets[code];
  out["counters"] = {{"events", events}, {"drops", drops}, {"fib", fib}};

  nlohmann::json vips = nlohmann::json::array();
  for (const auto& v : vips_) {
    nlohmann::json weights = nlohmann::json::object();
    for (const auto& p : peers_) {
      const bool serving = v.serving.empty() || std::find(v.serving.begin(), v.serving.end(),
                                                          p.member.name) != v.serving.end();
      if (serving) weights[p.member.name] = p.member.weight;
    }
    nlohmann::json entry{
        {"vip", v.label}, {"backends", sync_->backends(v.key)}, {"weights", weights}};
    const auto id = sync_->vip_id(v.key);
    if (id) {
      entry["vip_id"] = *id;
      auto c = program_->maps().vip_counters(*id);
      if (!c) throw std::runtime_error(c.error().message());
      nlohmann::json vip_drops = nlohmann::json::object();
      for (std::size_t r = 1; r < c->drops.size(); ++r)
        vip_drops[std::string(kDropReasonNames[r])] = c->drops[r];
      entry["counters"] = {{"local_pkts", c->local_pkts},
                           {"local_bytes", c->local_bytes},
                           {"fwd_pkts", c->fwd_pkts},
                           {"fwd_bytes", c->fwd_bytes},
                           {"from_peer_pkts", c->from_peer_pkts},
                           {"from_peer_bytes", c->from_peer_bytes},
                           {"drops", vip_drops}};
      // Served here (this node's slot) or forwarded to each member: every
      // serving member, and any other one that still has counts (flows that
      // the connection table keeps on a node no longer serving the VIP).
      nlohmann::json per_node = nlohmann::json::array();
      for (const auto& p : peers_) {
        const auto slot = sync_->stats_slot(p.member.id);
        if (!slot) continue;
        auto n = program_->maps().node_counters(*id, *slot);
        if (!n) throw std::runtime_error(n.error().message());
        if (!weights.contains(p.member.name) && n->pkts == 0) continue;
        per_node.push_back(
            {{"name", p.member.name}, {"self", p.self}, {"pkts", n->pkts}, {"bytes", n->bytes}});
      }
      entry["per_node"] = per_node;
    }
    vips.push_back(entry);
  }
  out["vips"] = vips;
  return out;
}

nlohmann::json Daemon::status() {
  nlohmann::json out = stats();
  out["interface"] = config_.interface;
  out["ifindex"] = ifindex_;
  const auto mode = query_xdp_mode(ifindex_);
  out["xdp_mode"] = mode ? std::string(to_string(*mode)) : std::string("detached");
  out["address"] = address_.to_string();
  out["mac"] = format_mac(mac_);
  out["maglev_table_size"] = config_.maglev_table_size;
  if (health_) {
    out["health"] = {{"kind", config_.health_kind},
                     {"target", config_.health_address->to_string() + ":" + std::to_string(config_.health_port)},
                     {"healthy", health_->healthy()},
                     {"last", health_->last_result()}};
  } else {
    out["health"] = {{"kind", "none"}};
  }

  nlohmann::json nodes = nlohmann::json::array();
  for (const auto& p : peers_) {
    nodes.push_back({{"name", p.member.name},
                     {"id", p.member.id},
                     {"address", p.member.address.to_string()},
                     {"weight", p.member.weight},
                     {"mac", mac_string(p.mac)},
                     {"self", p.self},
                     {"neighbour", p.neighbour},
                     {"managed_neighbour", p.managed_neighbour}});
  }
  out["nodes"] = nodes;

  const auto& events = out["counters"]["events"];
  out["conntrack"] = {{"hit", events["ct_hit"]},
                      {"miss", events["ct_miss"]},
                      {"insert", events["ct_insert"]},
                      {"insert_fail", events["ct_insert_fail"]}};
  return out;
}

nlohmann::json Daemon::handle_admin(std::string_view cmd, const nlohmann::json& args) {
  if (cmd == "status" || cmd == "stats") {
    if (!args.empty()) throw AdminError(std::string(cmd) + " takes no arguments");
    return cmd == "status" ? status() : stats();
  }
  if (cmd == "which") return oracle_->which(parse_which_args(args), members(), vips_, *sync_);
  throw AdminError("unknown command '" + std::string(cmd) + "' (known: status, stats, which)");
}

}  // namespace mixlb
