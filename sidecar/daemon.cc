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

constexpr std::uint8_t kProtoTcp = IPPROTO_TCP;
constexpr std::uint8_t kProtoUdp = IPPROTO_UDP;
constexpr std::string_view kWhichKeys = "proto, src, sport, vip, vport";

std::string_view verdict_name(std::uint32_t verdict) {
  switch (verdict) {
    case XDP_ABORTED:
      return "aborted";
    case XDP_DROP:
      return "drop";
    case XDP_PASS:
      return "pass";
    case XDP_TX:
      return "tx";
    case XDP_REDIRECT:
      return "redirect";
    default:
      return "unknown";
  }
}

const nlohmann::json& which_arg(const nlohmann::json& args, std::string_view key,
                                std::string_view what) {
  const auto it = args.find(key);
  if (it == args.end()) {
    throw AdminError(fmt::format("which: missing \"{}\" ({})", key, what));
  }
  return *it;
}

Address which_address(const nlohmann::json& args, std::string_view key) {
  const nlohmann::json& value = which_arg(args, key, "an IPv4 or IPv6 address");
  std::optional<Address> address;
  if (value.is_string()) address = Address::parse(value.get<std::string>());
  if (!address) {
    throw AdminError(
        fmt::format("which: {}: expected an IPv4 or IPv6 address, got {}", key,
                    value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
  }
  return *address;
}

std::uint16_t which_port(const nlohmann::json& args, std::string_view key) {
  const nlohmann::json& value = which_arg(args, key, "a port number 1..65535");
  const bool in_range = value.is_number_integer() && value.get<std::int64_t>() >= 1 &&
                        value.get<std::int64_t>() <= 65535;
  if (!in_range) {
    throw AdminError(
        fmt::format("which: {}: expected a port number 1..65535, got {}", key,
                    value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
  }
  return static_cast<std::uint16_t>(value.get<std::int64_t>());
}

// The Internet checksum's running sum over `bytes` (big-endian 16-bit words).
std::uint32_t checksum_add(std::uint32_t sum, std::span<const std::uint8_t> bytes) {
  for (std::size_t i = 0; i + 1 < bytes.size(); i += 2) sum += (bytes[i] << 8) | bytes[i + 1];
  if (bytes.size() % 2 != 0) sum += bytes.back() << 8;
  return sum;
}

std::uint16_t checksum_fold(std::uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum);
}

void put16(std::vector<std::uint8_t>& out, std::size_t at, std::uint16_t value) {
  out[at] = static_cast<std::uint8_t>(value >> 8);
  out[at + 1] = static_cast<std::uint8_t>(value & 0xff);
}

}  // namespace

ProbeFlow parse_which_args(const nlohmann::json& args) {
  if (!args.is_object()) throw AdminError("which: arguments must be an object");
  for (const auto& [key, value] : args.items()) {
    if (key != "proto" && key != "src" && key != "sport" && key != "vip" && key != "vport") {
      throw AdminError(
          fmt::format("which: unknown argument \"{}\" (which takes {})", key, kWhichKeys));
    }
  }
  ProbeFlow flow;
  const nlohmann::json& proto = which_arg(args, "proto", "tcp or udp");
  if (proto == "tcp") {
    flow.protocol = kProtoTcp;
  } else if (proto == "udp") {
    flow.protocol = kProtoUdp;
  } else {
    throw AdminError(
        fmt::format("which: proto: expected \"tcp\" or \"udp\", got {}",
                    proto.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
  }
  flow.src = which_address(args, "src");
  flow.sport = which_port(args, "sport");
  flow.vip = which_address(args, "vip");
  flow.vport = which_port(args, "vport");
  if (flow.src.family != flow.vip.family) {
    throw AdminError(fmt::format("which: src {} is {} but vip {} is {}; a flow has one family",
                                 flow.src.to_string(), flow.src.is_v4() ? "IPv4" : "IPv6",
                                 flow.vip.to_string(), flow.vip.is_v4() ? "IPv4" : "IPv6"));
  }
  return flow;
}

std::vector<std::uint8_t> probe_frame(const ProbeFlow& flow, const MacAddress& src_mac,
                                      const MacAddress& dst_mac) {
  const bool v6 = flow.vip.is_v6();
  const std::size_t l3_header = v6 ? 40 : 20;
  const std::size_t l4_length = flow.protocol == kProtoTcp ? 20 : 8;
  std::vector<std::uint8_t> frame(14 + l3_header + l4_length, 0);
  std::memcpy(&frame[0], dst_mac.data(), 6);
  std::memcpy(&frame[6], src_mac.data(), 6);
  put16(frame, 12, v6 ? 0x86dd : 0x0800);

  // The addresses as they sit in the header, for the header and the
  // transport checksum's pseudo-header alike.
  const std::size_t address_length = v6 ? 16 : 4;
  const auto* src = reinterpret_cast<const std::uint8_t*>(flow.src.words.data());
  const auto* dst = reinterpret_cast<const std::uint8_t*>(flow.vip.words.data());
  const std::size_t ip = 14;
  if (v6) {
    frame[ip] = 0x60;  // version 6, traffic class and flow label 0
    put16(frame, ip + 4, static_cast<std::uint16_t>(l4_length));
    frame[ip + 6] = flow.protocol;
    frame[ip + 7] = 64;  // hop limit
    std::memcpy(&frame[ip + 8], src, 16);
    std::memcpy(&frame[ip + 24], dst, 16);
  } else {
    frame[ip] = 0x45;  // version 4, five-word header
    put16(frame, ip + 2, static_cast<std::uint16_t>(l3_header + l4_length));
    put16(frame, ip + 6, 0x4000);  // don't fragment
    frame[ip + 8] = 64;            // TTL
    frame[ip + 9] = flow.protocol;
    std::memcpy(&frame[ip + 12], src, 4);
    std::memcpy(&frame[ip + 16], dst, 4);
    put16(frame, ip + 10, checksum_fold(checksum_add(0, std::span(frame).subspan(ip, l3_header))));
  }

  const std::size_t l4 = ip + l3_header;
  put16(frame, l4, flow.sport);
  put16(frame, l4 + 2, flow.vport);
  std::size_t checksum_at = 0;
  if (flow.protocol == kProtoTcp) {
    put16(frame, l4 + 4, 0x6d69);  // an arbitrary initial sequence number
    put16(frame, l4 + 6, 0x786c);
    frame[l4 + 12] = 5 << 4;        // five-word header
    frame[l4 + 13] = 0x02;          // SYN
    put16(frame, l4 + 14, 0xffff);  // window
    checksum_at = l4 + 16;
  } else {
    put16(frame, l4 + 4, static_cast<std::uint16_t>(l4_length));
    checksum_at = l4 + 6;
  }
  // Pseudo-header: both addresses, the protocol and the transport length.
  std::uint32_t sum = checksum_add(0, std::span(src, address_length));
  sum = checksum_add(sum, std::span(dst, address_length));
  sum += flow.protocol;
  sum += static_cast<std::uint32_t>(l4_length);
  std::uint16_t checksum = checksum_fold(checksum_add(sum, std::span(frame).subspan(l4)));
  // UDP sends a computed 0 as 0xffff (0 means "no checksum", which IPv6 forbids).
  if (flow.protocol == kProtoUdp && checksum == 0) checksum = 0xffff;
  put16(frame, checksum_at, checksum);
  return frame;
}

DpResult<MacAddress> probe_source_mac(const DatapathMaps& maps) {
  auto peers = maps.peer_macs();
  if (!peers) return std::unexpected(peers.error());
  for (unsigned last = 1; last <= 0xff; ++last) {
    const MacAddress candidate{0x02, 0, 0, 0, 0, static_cast<std::uint8_t>(last)};
    const bool taken = std::any_of(peers->begin(), peers->end(), [&](const auto& peer) {
      return std::memcmp(peer.first.addr, candidate.data(), candidate.size()) == 0;
    });
    if (!taken) return candidate;
  }
  return std::unexpected(DatapathError{"choosing a probe source MAC outside the peer-MAC map",
                                       std::make_error_code(std::errc::address_in_use)});
}

FlowOracle::FlowOracle(XdpProgram& dry_run, int ifindex, const MacAddress& node_mac)
    : dry_run_(dry_run), ifindex_(ifindex), node_mac_(node_mac) {}

nlohmann::json FlowOracle::which(const ProbeFlow& flow, std::span<const Member> members,
                                 std::span<const VipEntry> vips, const ClusterSync& sync) {
  auto mac = probe_source_mac(dry_run_.maps());
  if (!mac) throw std::runtime_error(mac.error().message());
  const auto frame = probe_frame(flow, *mac, node_mac_);
  auto decision = dry_run_.decide(frame, ifindex_);
  if (!decision) throw std::runtime_error(decision.error().message());

  nlohmann::json out;
  out["flow"] = {{"proto", flow.protocol == kProtoTcp ? "tcp" : "udp"},
                 {"src", flow.src.to_string()},
                 {"sport", flow.sport},
                 {"dst", flow.vip.to_string()},
                 {"dport", flow.vport}};
  out["verdict"] = verdict_name(decision->verdict);
  out["node_id"] = decision->node_id;
  out["node"] = nullptr;
  out["self"] = false;
  for (const Member& m : members) {
    if (m.id != decision->node_id || decision->node_id == MIXLB_NODE_NONE) continue;
    out["node"] = m.name;
    out["self"] = m.self;
  }
  out["from_conntrack"] = (decision->flags & MIXLB_DECIDED_CT_HIT) != 0;
  out["vip"] = nullptr;
  if ((decision->flags & MIXLB_DECIDED_VIP) != 0) {
    out["vip"] = fmt::format("vip id {}", decision->vip_id);
    for (const VipEntry& v : vips) {
      if (sync.vip_id(v.key) == decision->vip_id) out["vip"] = v.label;
    }
  }
  if (decision->verdict == XDP_DROP) {
    out["drop_reason"] = decision->drop < kDropReasonNames.size()
                             ? std::string(kDropReasonNames[decision->drop])
                             : fmt::format("reason {}", decision->drop);
  }
  return out;
}

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
