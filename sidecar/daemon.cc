#include "daemon.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <algorithm>
#include <cstring>

#include <spdlog/spdlog.h>

#include "abi.h"
#include "admin_protocol.h"
#include "admin_server.h"
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
  struct Setting {
    const char* scope;  // "all" or the uplink
    const char* name;
    const char* value;
  };
  const Setting settings[] = {
      {"all", "arp_ignore", "1"},        {"all", "arp_announce", "2"},
      {nullptr, "arp_ignore", "1"},      {nullptr, "arp_announce", "2"},
      {nullptr, "forwarding", "1"},
  };
  auto guard = std::make_shared<SysctlGuard>();
  on_undo("restore sysctls", [guard] { guard->restore(); });
  for (const auto& s : settings) {
    auto key = SysctlKey::interface_conf("ipv4", s.scope ? s.scope : config_.interface, s.name);
    if (!key) startup_failed(std::string("sysctl key for ") + s.name, key.error());
    if (auto ec = guard->set(*key, s.value)) startup_failed("setting " + key->name(), ec);
  }

  for (const auto& v : config_.vips) {
    auto change = netlink_->add_address(lo_ifindex_, v.address, 32);
    if (!change) startup_failed("adding VIP " + v.address.to_string() + " to lo", change.error());
    if (*change == AddressChange::kAdded) {
      const Address a = v.address;
      on_undo("remove VIP " + a.to_string() + " from lo", [this, a] {
        if (auto ec = netlink_->delete_address(lo_ifindex_, a, 32))
          spdlog::warn("removing VIP {} from lo: {}", a.to_string(), ec.message());
      });
    } else {
      spdlog::info("VIP {} was already on lo; it will be left there", v.address.to_string());
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

  sync_ = std::make_unique<ClusterSync>(program_->maps(), config_.max_vips);
  std::vector<Member> members;
  for (const auto& p : peers_) members.push_back(p.member);
  if (auto r = sync_->apply(members, vips_); !r) throw StartupError(r.error().message());

  auto mode = program_->attach(ifindex_, config_.xdp_mode);
  if (!mode) throw StartupError(mode.error().message() + " on " + config_.interface);
  on_undo("detach XDP", [this] { program_->detach(); });
  if (*mode == AttachMode::kGeneric)
    spdlog::warn("XDP runs in generic mode on {}: correct but slower than native",
                 config_.interface);
  spdlog::info("XDP attached to {} in {} mode", config_.interface, to_string(*mode));
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
        if (auto ec = netlink_->delete_neighbour(ifindex_, a); ec && ec != std::errc::no_such_file_or_directory)
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
    spdlog::info("peer {} ({}) is at {}", p.member.name, p.member.address.to_string(), format_mac(*n->mac));
    p.mac = n->mac;
  }
}

nlohmann::json Daemon::status() {
  nlohmann::json out;
  out["node"] = config_.node_name;
  out["node_id"] = node_id_for(config_.node_name);
  out["interface"] = config_.interface;
  out["ifindex"] = ifindex_;
  const auto mode = query_xdp_mode(ifindex_);
  out["xdp_mode"] = mode ? std::string(to_string(*mode)) : std::string("detached");
  out["address"] = address_.to_string();
  out["mac"] = format_mac(mac_);
  out["maglev_table_size"] = config_.maglev_table_size;

  nlohmann::json nodes = nlohmann::json::array();
  std::vector<std::string> names;
  for (const auto& p : peers_) {
    nodes.push_back({{"name", p.member.name},
                     {"id", p.member.id},
                     {"address", p.member.address.to_string()},
                     {"mac", mac_string(p.mac)},
                     {"self", p.self},
                     {"neighbour", p.neighbour},
                     {"managed_neighbour", p.managed_neighbour}});
    names.push_back(p.member.name);
  }
  out["nodes"] = nodes;

  nlohmann::json vips = nlohmann::json::array();
  for (const auto& v : vips_) {
    nlohmann::json entry{{"vip", v.label}, {"backends", names}};
    const auto id = sync_->vip_id(v.key);
    if (id) {
      entry["vip_id"] = *id;
      auto c = program_->maps().vip_counters(*id);
      if (!c) throw AdminError(c.error().message());
      nlohmann::json drops = nlohmann::json::object();
      for (std::size_t r = 1; r < c->drops.size(); ++r) drops[std::string(kDropReasonNames[r])] = c->drops[r];
      entry["counters"] = {{"local_pkts", c->local_pkts},         {"local_bytes", c->local_bytes},
                           {"fwd_pkts", c->fwd_pkts},             {"fwd_bytes", c->fwd_bytes},
                           {"from_peer_pkts", c->from_peer_pkts}, {"from_peer_bytes", c->from_peer_bytes},
                           {"drops", drops}};
    }
    vips.push_back(entry);
  }
  out["vips"] = vips;

  auto counters = program_->maps().counters();
  if (!counters) throw AdminError(counters.error().message());
  out["conntrack"] = {{"hit", counters->events[MIXLB_CNT_CT_HIT]},
                      {"miss", counters->events[MIXLB_CNT_CT_MISS]},
                      {"insert", counters->events[MIXLB_CNT_CT_INSERT]},
                      {"insert_fail", counters->events[MIXLB_CNT_CT_INSERT_FAIL]}};
  return out;
}

nlohmann::json Daemon::handle_admin(std::string_view cmd, const nlohmann::json& args) {
  if (cmd == "status") {
    if (!args.empty()) throw AdminError("status takes no arguments");
    return status();
  }
  throw AdminError("unknown command '" + std::string(cmd) + "' (known: status)");
}

}  // namespace mixlb
