#include "daemon.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <cstring>
#include <set>
#include <variant>

#include "admin/admin_protocol.h"
#include "admin/admin_server.h"
#include "cluster/node_id.h"
#include "config/keyring_file.h"
#include "health.h"
#include "kernel/abi.h"
#include "kernel/sysctl.h"
#include "settings.h"
#include "transport.h"

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

gossip::Address gossip_address(const Address& address, std::uint16_t port) {
  gossip::Address out;
  out.family = address.is_v6() ? gossip::Address::Family::kV6 : gossip::Address::Family::kV4;
  std::memcpy(out.ip.data(), address.words.data(), address.is_v6() ? 16 : 4);
  out.port = port;
  return out;
}

bool unspecified(const Address& address) {
  return std::all_of(address.words.begin(), address.words.end(), [](std::uint32_t w) { return w == 0; });
}

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};

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
  static_members_.push_back(self.member);
  for (const auto& p : config_.peers) {
    if (p.name != config_.node_name)
      static_members_.push_back(Member{p.name, node_id_for(p.name), p.address, p.weight, false});
  }
  vips_ = expand_vips(config_.vips);
  table_vips_ = vips_;
  drained_ = config_.node_weight == 0;
  spdlog::info("node {} (id {}) on {} ({}, {}), {} peer(s) {}, {} VIP port(s)", config_.node_name,
               self.member.id, config_.interface, address_.to_string(), format_mac(mac_),
               static_members_.size() - 1,
               config_.gossip_enabled ? "as gossip seeds" : "as static members", vips_.size());

  setup_kernel();
  setup_datapath();
  setup_neighbours();
  setup_health();
  setup_gossip();

  admin_ = std::make_unique<AdminServer>(
      io_, config_.admin_socket,
      [this](std::string cmd, nlohmann::json args) -> boost::asio::awaitable<nlohmann::json> { co_return handle_admin(cmd, args); });
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
  // With gossip, members join later; they are expected in the family of
  // this node's address and the seeds.
  const bool v6_nodes = std::any_of(static_members_.begin(), static_members_.end(),
                                    [](const Member& m) { return m.address.is_v6(); });
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
  // With gossip the first tables wait for the join (see daemon.h).
  if (!config_.gossip_enabled) {
    if (auto r = sync_->apply(static_members_, vips_); !r) throw StartupError(r.error().message());
    joined_ = true;
  }

  auto mode = program_->attach(ifindex_, config_.xdp_mode);
  if (!mode) throw StartupError(mode.error().message() + " on " + config_.interface);
  on_undo("detach XDP", [this] { program_->detach(); });
  if (*mode == AttachMode::kGeneric)
    spdlog::warn("XDP runs in generic mode on {}: correct but slower than native",
                 config_.interface);
  spdlog::info("XDP attached to {} in {} mode", config_.interface, to_string(*mode));
}

// Checks the node's own app. With gossip its verdict is published: a node
// whose app fails its check serves no VIP (in every node's tables,
// including its own). Without gossip it is reported in status and the log.
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
  health_ = std::make_unique<HealthChecker>(io_, check, [this](bool healthy, const std::string& why) {
    if (healthy)
      spdlog::info("app is healthy ({})", why);
    else
      spdlog::warn("app is unhealthy: {}", why);
    if (membership_) publish_self();
  });
  health_->start();
  on_undo("stop the app check", [this] { health_->stop(); });
}

void Daemon::setup_neighbours() {
  on_undo("forget peers (neighbour entries, peer MACs)", [this] {
    for (auto& p : peers_)
      if (!p.self) forget_peer(p);
  });
  sync_peers(desired_members());
  refresh_neighbours();
  schedule_neighbour_refresh();
}

// A new member: ask the kernel to keep its neighbour entry resolved
// (bpf_fib_lookup answers NO_NEIGH otherwise). Its MAC reaches the peer-MAC
// map once refresh_neighbours() sees the entry resolved.
void Daemon::add_peer(const Member& member) {
  PeerState peer;
  peer.member = member;
  auto setup = netlink_->add_managed_neighbour(ifindex_, member.address);
  if (!setup) {
    spdlog::warn("neighbour entry for {} ({}): {}; will keep asking the kernel to resolve it",
                 member.name, member.address.to_string(), setup.error().message());
  } else {
    peer.managed_neighbour = setup->managed;
    peer.created_neighbour = setup->created;
  }
  peers_.push_back(std::move(peer));
}

// A member gone: its MAC leaves the peer-MAC map, and the neighbour entry
// goes if this daemon added it.
void Daemon::forget_peer(PeerState& p) {
  if (p.mac) {
    if (auto r = program_->maps().remove_peer_mac(mac_key(*p.mac)); !r)
      spdlog::warn("{}", r.error().message());
    p.mac.reset();
  }
  if (p.created_neighbour) {
    if (auto ec = netlink_->delete_neighbour(ifindex_, p.member.address);
        ec && ec != std::errc::no_such_file_or_directory)
      spdlog::warn("deleting neighbour {}: {}", p.member.address.to_string(), ec.message());
    p.created_neighbour = false;
  }
}

// Makes peers_ (this node first) hold exactly `members`; true when a peer
// was added.
bool Daemon::sync_peers(const std::vector<Member>& members) {
  bool added = false;
  auto wanted = [&](const PeerState& p) {
    return std::find_if(members.begin(), members.end(), [&](const Member& m) {
             return m.name == p.member.name && m.address == p.member.address;
           }) != members.end();
  };
  for (auto it = peers_.begin(); it != peers_.end();) {
    if (it->self || wanted(*it)) {
      ++it;
      continue;
    }
    forget_peer(*it);
    it = peers_.erase(it);
  }
  for (const auto& m : members) {
    auto it = std::find_if(peers_.begin(), peers_.end(),
                           [&](const PeerState& p) { return p.member.name == m.name; });
    if (it == peers_.end()) {
      add_peer(m);
      added = true;
    } else {
      it->member = m;
    }
  }
  return added;
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

// Before gossip is set up (and with nothing known yet) the member set is
// empty: the peer list names seeds, not members.
std::vector<Member> Daemon::desired_members() const {
  if (!config_.gossip_enabled) return static_members_;
  return membership_ ? membership_->members() : std::vector<Member>{};
}

// --- gossip ------------------------------------------------------------------

void Daemon::setup_gossip() {
  if (!config_.gossip_enabled) {
    spdlog::info("gossip is off: the peer list is the member set");
    return;
  }
  membership_ = std::make_unique<Membership>(config_.node_name, vips_);
  const auto port = static_cast<std::uint16_t>(config_.gossip_port);
  const bool bind_any = config_.gossip_bind && unspecified(*config_.gossip_bind);
  gossip_address_ = gossip_address(config_.gossip_bind && !bind_any ? *config_.gossip_bind : address_, port);

  gossip::TransportOptions options;
  options.config.name = config_.node_name;
  options.config.address = gossip_address_;
  options.config.probe_interval = std::chrono::milliseconds(config_.gossip_probe_interval_ms);
  options.config.probe_timeout = std::chrono::milliseconds(config_.gossip_probe_timeout_ms);
  options.config.gossip_interval = std::chrono::milliseconds(config_.gossip_interval_ms);
  options.config.suspicion_mult = static_cast<int>(config_.gossip_suspicion_mult);
  options.config.push_pull_interval = std::chrono::milliseconds(config_.gossip_push_pull_interval_ms);
  options.config.rejoin_interval = std::chrono::milliseconds(config_.gossip_rejoin_interval_ms);
  options.config.max_metadata_size = kMaxMetadataSize;
  if (config_.gossip_bind) options.bind = gossip_address(*config_.gossip_bind, port);

  const MemberMetadata self = self_metadata();
  try {
    options.config.metadata = encode_metadata(self);
  } catch (const std::length_error& e) {
    throw StartupError(std::string("gossip metadata: ") + e.what());
  }
  if (!config_.keyring_file.empty()) {
    std::vector<gossip::Key> keys;
    try {
      keys = read_keyring_file(config_.keyring_file);
    } catch (const ConfigError& e) {
      throw StartupError(e.what());
    }
    gossip::Keyring ring(config_.cluster_name, keys.front());
    for (std::size_t i = 1; i < keys.size(); ++i) ring.add(keys[i]);
    options.keyring.emplace(std::move(ring));
    spdlog::info("gossip is encrypted with {} key(s) from {}", keys.size(), config_.keyring_file);
  } else {
    spdlog::warn("gossip is not encrypted and not authenticated: set gossip.keyring");
  }
  membership_->set_self(self, gossip_address_);

  try {
    gossip_ = std::make_unique<gossip::Transport>(std::move(options), [this](gossip::Event event) {
      // The transport's thread: hand the event over and return.
      boost::asio::post(io_, [this, event = std::move(event)] { on_gossip_event(event); });
    });
  } catch (const std::invalid_argument& e) {
    throw StartupError(std::string("gossip: ") + e.what());
  }
  std::vector<gossip::Address> seeds;
  for (const auto& m : static_members_) {
    const gossip::Address seed = gossip_address(m.address, port);
    if (!m.self && seed != gossip_address_) seeds.push_back(seed);
  }
  join_wait_ = JoinWait(seeds.size());
  if (auto ec = gossip_->start(seeds))
    startup_failed("gossip on " + gossip_address_.to_string(), ec);
  on_undo("leave the gossip cluster", [this] {
    if (auto ec = gossip_->stop()) spdlog::warn("gossip stopped uncleanly: {}", ec.message());
  });
  spdlog::info("gossip on {} (cluster '{}'), joining through {} seed(s)",
               gossip_->address().to_string(), config_.cluster_name, seeds.size());
  if (join_wait_.done()) {  // no seed: the first node of a cluster
    joined_ = true;
    schedule_resync();
  }
}

void Daemon::on_gossip_event(const gossip::Event& event) {
  if (stopping_) return;
  std::visit(Overloaded{
                 [&](const gossip::MemberEvent& e) {
                   if (membership_->apply(e)) schedule_resync();
                 },
                 [&](const gossip::UserEventDelivery& e) {
                   ++user_events_;
                   spdlog::debug("gossip: user event {}#{} ({} bytes)", e.origin, e.seq,
                                 e.payload.size());
                 },
                 [&](const gossip::SyncResult& r) {
                   if (r.error)
                     spdlog::warn("gossip: {} sync with {} failed: {}", gossip::to_string(r.purpose),
                                  r.peer.to_string(), r.error.message());
                   else
                     spdlog::info("gossip: {} sync with {} done", gossip::to_string(r.purpose),
                                  r.peer.to_string());
                   if (!joined_ && r.purpose == gossip::SyncPurpose::kJoin &&
                       join_wait_.on_result(!r.error)) {
                     if (join_wait_.alone())
                       spdlog::warn("gossip: no seed answered; publishing the tables of the "
                                    "members known so far and re-joining every {} ms",
                                    config_.gossip_rejoin_interval_ms);
                     joined_ = true;
                     schedule_resync();
                   }
                 },
             },
             event);
}

// What this node publishes: its weight (0 when drained), where to forward
// to it, whether its app passes its check, and the VIP ports it serves.
MemberMetadata Daemon::self_metadata() const {
  MemberMetadata m;
  m.weight = drained_ ? 0 : config_.node_weight;
  m.mac = mac_;
  m.address = address_;
  m.app_healthy = !health_ || health_->healthy();
  for (const auto& v : vips_) {
    if (!v.serving || std::find(v.serving->begin(), v.serving->end(), config_.node_name) !=
                          v.serving->end())
      m.vips.push_back(vip_tag(v.key));
  }
  return m;
}

void Daemon::publish_self() {
  const MemberMetadata m = self_metadata();
  if (membership_->set_self(m, gossip_address_)) schedule_resync();
  if (!gossip_) return;
  if (auto ec = gossip_->set_metadata(encode_metadata(m)))
    spdlog::error("gossip: publishing this node's metadata: {}", ec.message());
}

// Changes arrive in bursts (a join brings the whole cluster); one rebuild
// after the burst is enough.
void Daemon::schedule_resync() {
  if (resync_pending_) return;
  resync_pending_ = true;
  boost::asio::post(io_, [this] { resync(); });
}

void Daemon::resync() {
  resync_pending_ = false;
  if (!joined_ || stopping_) return;
  const std::vector<Member> members = desired_members();
  std::vector<VipEntry> vips = membership_ ? membership_->vip_entries() : vips_;
  const bool added = sync_peers(members);
  // A new member's MAC belongs in the peer-MAC map before packets it
  // forwards arrive, not at the next periodic refresh: unrecognised, they
  // would be balanced again here.
  if (added) refresh_neighbours();
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
      spdlog::info("{}: backends {}", v.label, now.empty() ? "none" : fmt::format("{}", fmt::join(now, ", ")));
  }
}

nlohmann::json Daemon::set_drained(bool drained) {
  if (!membership_)
    throw AdminError("drain needs gossip membership (gossip.enabled is false): set this node's "
                     "weight to 0 in every node's peer list instead");
  if (!drained && config_.node_weight == 0)
    throw AdminError("node.weight is 0 in the configuration: there is no weight to restore");
  drained_ = drained;
  publish_self();
  return {{"node", config_.node_name},
          {"drained", drained_},
          {"weight", self_metadata().weight}};
}

nlohmann::json Daemon::members_json() {
  if (!membership_) throw AdminError("gossip is off (gossip.enabled = false): status lists the static members");
  std::optional<gossip::TransportSnapshot> snap;
  std::string snapshot_error;
  if (auto s = gossip_->snapshot(std::chrono::milliseconds(1000)))
    snap = std::move(*s);
  else
    snapshot_error = s.error().message();

  const auto in_tables = membership_->in_tables();
  const auto now = std::chrono::steady_clock::now();
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [name, r] : membership_->records()) {
    std::string state(gossip::to_string(r.state));
    std::uint32_t incarnation = r.incarnation;
    if (r.self && snap) {
      state = gossip::to_string(snap->self.state);
      incarnation = snap->self.incarnation;
    }
    nlohmann::json entry{
        {"name", name},
        {"self", r.self},
        {"state", state},
        {"incarnation", incarnation},
        {"gossip_address", r.gossip_address.to_string()},
        {"in_tables", std::find(in_tables.begin(), in_tables.end(), name) != in_tables.end()},
        {"since_s", std::chrono::duration<double>(now - r.since).count()},
    };
    if (r.metadata) {
      entry["address"] = r.metadata->address.to_string();
      entry["mac"] = format_mac(r.metadata->mac);
      entry["weight"] = r.metadata->weight;
      entry["app_healthy"] = r.metadata->app_healthy;
      entry["vips"] = membership_->vip_labels(*r.metadata);
    }
    if (!r.problem.empty()) entry["problem"] = r.problem;
    list.push_back(entry);
  }
  nlohmann::json out{{"node", config_.node_name},
                     {"cluster", config_.cluster_name},
                     {"gossip_address", gossip_address_.to_string()},
                     {"members", list}};
  if (snap) {
    const auto& c = snap->core;
    std::uint64_t drops = 0;
    for (auto d : c.drops) drops += d;
    out["gossip"] = {{"health_score", snap->health_score},
                     {"probes", c.probes},
                     {"probes_failed", c.probes_failed},
                     {"suspicions_raised", c.suspicions_raised},
                     {"deaths_declared", c.deaths_declared},
                     {"refutations", c.refutations},
                     {"bytes_sent", c.bytes_sent},
                     {"bytes_received", c.bytes_received},
                     {"drops", drops},
                     {"last_drop", c.last_drop},
                     {"last_error", snap->transport.last_error}};
  } else {
    out["gossip"] = {{"error", "the gossip thread did not answer: " + snapshot_error}};
  }
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
  for (const auto& v : table_vips_) {
    nlohmann::json weights = nlohmann::json::object();
    for (const auto& p : peers_) {
      const bool serving = !v.serving || std::find(v.serving->begin(), v.serving->end(),
                                                    p.member.name) != v.serving->end();
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

  if (membership_) {
    std::size_t alive = 0;
    for (const auto& [name, r] : membership_->records())
      alive += r.state == gossip::MemberState::kAlive || r.state == gossip::MemberState::kSuspect;
    out["gossip"] = {{"enabled", true},
                     {"address", gossip_address_.to_string()},
                     {"cluster", config_.cluster_name},
                     {"encrypted", !config_.keyring_file.empty()},
                     {"joined", joined_},
                     {"members_alive", alive},
                     {"drained", drained_},
                     {"table_rebuilds", resyncs_},
                     {"user_events", user_events_},
                     {"last_sync_error", last_sync_error_}};
  } else {
    out["gossip"] = {{"enabled", false}};
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
  if (cmd == "which") {
    ProbeFlow flow;
    try {
      flow = parse_which_args(args);
    } catch (const std::invalid_argument& e) {
      throw AdminError(e.what());
    }
    return oracle_->which(flow, members(), table_vips_, *sync_);
  }
  if (cmd == "members" || cmd == "drain" || cmd == "undrain") {
    if (!args.empty()) throw AdminError(std::string(cmd) + " takes no arguments");
    if (cmd == "members") return members_json();
    return set_drained(cmd == "drain");
  }
  throw AdminError("unknown command '" + std::string(cmd) +
                   "' (known: status, stats, which, members, drain, undrain)");
}

}  // namespace mixlb
