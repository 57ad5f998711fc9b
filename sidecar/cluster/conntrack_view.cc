#include "cluster/conntrack_view.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "kernel/conntrack_walk.h"

namespace mixlb {
namespace {

Address address_of(const std::uint32_t words[4], std::uint8_t family) {
  Address a;
  a.family = family == MIXLB_AF_INET6 ? AF_INET6 : AF_INET;
  std::memcpy(a.words.data(), words, sizeof(a.words));
  return a;
}

std::string endpoint(const Address& a, std::uint16_t port_be) {
  const std::string host = a.is_v6() ? "[" + a.to_string() + "]" : a.to_string();
  return host + ":" + std::to_string(ntohs(port_be));
}

}  // namespace

bool CtFilter::matches(const mixlb_flow_key& key, const mixlb_ct_value& value) const {
  if (node_id && value.node_id != *node_id) return false;
  if (vip) {
    if (address_of(key.dst, key.family) != *vip) return false;
    if (vip_port && ntohs(key.dport) != *vip_port) return false;
    if (proto && key.proto != *proto) return false;
  }
  if (client && address_of(key.src, key.family) != *client) return false;
  return true;
}

std::optional<std::string> parse_ct_vip(std::string_view text, CtFilter& filter) {
  const std::string_view whole = text;
  const auto bad = [&] {
    return "--vip: '" + std::string(whole) +
           "' is not ADDR, ADDR:PORT, [IPv6] or [IPv6]:PORT, with /tcp or /udp optionally after it";
  };
  if (const auto slash = text.rfind('/'); slash != std::string_view::npos) {
    const std::string_view proto = text.substr(slash + 1);
    if (proto == "tcp") {
      filter.proto = 6;
    } else if (proto == "udp") {
      filter.proto = 17;
    } else {
      return bad();
    }
    text = text.substr(0, slash);
  }
  std::string_view host = text, port;
  if (text.starts_with('[')) {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return bad();
    host = text.substr(1, close - 1);
    const std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return bad();
      port = rest.substr(1);
    }
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    host = text.substr(0, text.find(':'));
    port = text.substr(text.find(':') + 1);
  }
  const auto address = Address::parse(host);
  if (!address) return bad();
  filter.vip = *address;
  if (!port.empty()) {
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) return bad();
    filter.vip_port = static_cast<std::uint16_t>(value);
  }
  return std::nullopt;
}

DpResult<CtListing> list_conntrack(int fd, const CtFilter& filter, std::size_t limit) {
  CtListing out;
  auto info = conntrack_info(fd, "the connection table");
  if (!info) return std::unexpected(info.error());
  out.capacity = info->max_entries;
  out.now_ns = coarse_now_ns();
  auto walked = walk_conntrack(fd, 4096, [&](const mixlb_flow_key& key, const mixlb_ct_value& value) {
    ++out.entries;
    if (!filter.matches(key, value)) return;
    ++out.matched;
    // Keep the `limit` most recent: a heap would be cheaper for a huge
    // match with a small limit, but the walk itself dominates.
    out.shown.push_back({key, value});
    if (out.shown.size() > 2 * limit + 64) {
      std::nth_element(out.shown.begin(), out.shown.begin() + static_cast<std::ptrdiff_t>(limit),
                       out.shown.end(), [](const CtEntry& a, const CtEntry& b) {
                         return a.value.last_seen_ns > b.value.last_seen_ns;
                       });
      out.shown.resize(limit);
    }
  });
  if (!walked) return std::unexpected(walked.error());
  std::sort(out.shown.begin(), out.shown.end(), [](const CtEntry& a, const CtEntry& b) {
    return a.value.last_seen_ns > b.value.last_seen_ns;
  });
  if (out.shown.size() > limit) out.shown.resize(limit);
  return out;
}

std::string flow_client(const mixlb_flow_key& key) {
  return endpoint(address_of(key.src, key.family), key.sport);
}

std::string flow_vip(const mixlb_flow_key& key) {
  return endpoint(address_of(key.dst, key.family), key.dport);
}

std::string ct_flags_text(std::uint32_t flags) {
  std::string out;
  const auto add = [&](std::uint32_t bit, const char* word) {
    if ((flags & bit) == 0) return;
    if (!out.empty()) out += ",";
    out += word;
  };
  add(MIXLB_CT_SEEN_SYN, "syn");
  add(MIXLB_CT_SEEN_FIN, "fin");
  add(MIXLB_CT_SEEN_RST, "rst");
  add(MIXLB_CT_FROM_NON_SYN, "mid-stream");
  return out.empty() ? "-" : out;
}

}  // namespace mixlb
