#include "cluster/which.h"


#include <arpa/inet.h>
#include <fmt/format.h>
#include <linux/bpf.h>
#include <netinet/in.h>

#include <cstring>
#include <stdexcept>

#include "common/quote.h"
#include "kernel/abi.h"

namespace mixlb {
namespace {

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

// A client's value in an error message: short and printable, however long
// or strange it was.
std::string shown(const nlohmann::json& value) {
  if (value.is_string()) return quote_input(value.get_ref<const std::string&>());
  // JSON text escapes its control characters; only its length needs a bound.
  std::string text = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return text.size() <= 64 ? text : quote_input(text);
}

const nlohmann::json& which_arg(const nlohmann::json& args, std::string_view key,
                                std::string_view what) {
  const auto it = args.find(key);
  if (it == args.end()) {
    throw std::invalid_argument(fmt::format("which: missing \"{}\" ({})", key, what));
  }
  return *it;
}

Address which_address(const nlohmann::json& args, std::string_view key) {
  const nlohmann::json& value = which_arg(args, key, "an IPv4 or IPv6 address");
  std::optional<Address> address;
  if (value.is_string()) address = Address::parse(value.get<std::string>());
  if (!address) {
    throw std::invalid_argument(
        fmt::format("which: {}: expected an IPv4 or IPv6 address, got {}", key, shown(value)));
  }
  return *address;
}

std::uint16_t which_port(const nlohmann::json& args, std::string_view key) {
  const nlohmann::json& value = which_arg(args, key, "a port number 1..65535");
  const bool in_range = value.is_number_integer() && value.get<std::int64_t>() >= 1 &&
                        value.get<std::int64_t>() <= 65535;
  if (!in_range) {
    throw std::invalid_argument(
        fmt::format("which: {}: expected a port number 1..65535, got {}", key, shown(value)));
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
  if (!args.is_object()) throw std::invalid_argument("which: arguments must be an object");
  for (const auto& [key, value] : args.items()) {
    if (key != "proto" && key != "src" && key != "sport" && key != "vip" && key != "vport") {
      throw std::invalid_argument(
          fmt::format("which: unknown argument {} (which takes {})", quote_input(key), kWhichKeys));
    }
  }
  ProbeFlow flow;
  const nlohmann::json& proto = which_arg(args, "proto", "tcp or udp");
  if (proto == "tcp") {
    flow.protocol = kProtoTcp;
  } else if (proto == "udp") {
    flow.protocol = kProtoUdp;
  } else {
    throw std::invalid_argument(
        fmt::format("which: proto: expected \"tcp\" or \"udp\", got {}", shown(proto)));
  }
  flow.src = which_address(args, "src");
  flow.sport = which_port(args, "sport");
  flow.vip = which_address(args, "vip");
  flow.vport = which_port(args, "vport");
  if (flow.src.family != flow.vip.family) {
    throw std::invalid_argument(fmt::format("which: src {} is {} but vip {} is {}; a flow has one family",
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
    // ACK: a packet of an established flow, so the flow's connection entry
    // answers when it has one (a SYN skips the table: it would start a new
    // connection); without an entry the tables answer, as for a SYN.
    frame[l4 + 13] = 0x10;
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

}  // namespace mixlb
