#pragma once
// Test frames, built field by field: Ethernet (with VLAN tags on demand),
// IPv4 (options, fragment bits, lying lengths) or IPv6 (extension headers,
// lying payload length), and TCP, UDP or ICMP/ICMPv6 (an error embeds another
// frame's IP packet), with correct checksums. Tests compare the program's
// output with frames built here, byte for byte.
#include <arpa/inet.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "mixlb_abi.h"

namespace mixlb::test {

using Mac = std::array<std::uint8_t, 6>;
using Bytes = std::vector<std::uint8_t>;

constexpr std::uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10;

inline std::uint32_t ip4(const char* text) {
  in_addr a{};
  inet_pton(AF_INET, text, &a);
  return a.s_addr;  // network order
}

using Ip6 = std::array<std::uint8_t, 16>;

inline Ip6 ip6(const char* text) {
  Ip6 a{};
  inet_pton(AF_INET6, text, a.data());
  return a;
}

// An IPv6 extension header: its type and its body after the next-header and
// length bytes (padded to a multiple of 8 bytes with the first two).
struct ExtHeader {
  std::uint8_t type;
  Bytes body;  // 6 bytes gives the smallest header
};

inline std::uint16_t csum_fold(std::uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum);
}

inline std::uint32_t csum_add(std::uint32_t sum, const std::uint8_t* p, std::size_t n) {
  for (std::size_t i = 0; i + 1 < n; i += 2) sum += (p[i] << 8) | p[i + 1];
  if (n & 1) sum += p[n - 1] << 8;
  return sum;
}

struct Frame {
  Mac dst_mac{0x02, 0, 0, 0, 0, 0x01};
  Mac src_mac{0x02, 0, 0, 0, 0, 0xfe};  // the upstream router
  std::uint16_t ethertype = 0x0800;       // 0x86dd builds IPv6
  std::vector<std::uint16_t> vlan_tags;   // outer first: 802.1Q tag control values
  std::uint16_t vlan_tpid = 0x8100;
  std::uint32_t saddr = ip4("192.0.2.10");
  std::uint32_t daddr = ip4("10.100.0.1");
  std::uint8_t protocol = 6;
  std::uint8_t ttl = 64;
  std::uint16_t frag_off = 0;          // host order: flags << 13 | offset
  Bytes ip_options;                    // padded to 4 bytes by build()
  std::optional<std::uint8_t> ihl;     // override the header length field
  std::optional<std::uint16_t> tot_len;  // override the total length field
  std::uint16_t sport = 40000;
  std::uint16_t dport = 80;
  std::uint8_t tcp_flags = kSyn;
  Bytes payload;
  // IPv6
  Ip6 saddr6 = ip6("2001:db8::10");
  Ip6 daddr6 = ip6("fd00:100::1");
  std::vector<ExtHeader> ext;
  std::optional<std::uint16_t> payload_len;  // override the IPv6 payload length
  // ICMP (protocol 1 or 58)
  std::uint8_t icmp_type = 8;
  std::uint8_t icmp_code = 0;
  std::uint32_t icmp_rest = 0;  // the 4 bytes after the checksum (MTU for "too big")

  bool v6() const { return ethertype == 0x86dd; }

  // The IP packet (no Ethernet header): what an ICMP error embeds.
  Bytes ip_packet() const {
    const Bytes f = build_untagged();
    return Bytes(f.begin() + 14, f.end());
  }

  Bytes build() const {
    Bytes f = build_untagged();
    // Insert the tags after the MAC addresses, innermost last.
    for (std::size_t i = vlan_tags.size(); i-- > 0;) {
      const std::uint16_t tpid = i == 0 ? vlan_tpid : 0x8100;
      const Bytes tag{static_cast<std::uint8_t>(tpid >> 8), static_cast<std::uint8_t>(tpid & 0xff),
                      static_cast<std::uint8_t>(vlan_tags[i] >> 8),
                      static_cast<std::uint8_t>(vlan_tags[i] & 0xff)};
      f.insert(f.begin() + 12, tag.begin(), tag.end());
    }
    return f;
  }

  Bytes build_untagged() const {
    Bytes f(14);
    std::memcpy(&f[0], dst_mac.data(), 6);
    std::memcpy(&f[6], src_mac.data(), 6);
    f[12] = ethertype >> 8;
    f[13] = ethertype & 0xff;
    if (v6()) {
      const Bytes p = ip6_packet();
      f.insert(f.end(), p.begin(), p.end());
      return f;
    }
    if (ethertype != 0x0800) {
      f.insert(f.end(), payload.begin(), payload.end());
      return f;
    }
    Bytes opts = ip_options;
    while (opts.size() % 4) opts.push_back(0);  // end-of-options padding
    Bytes l4 = transport();
    const std::size_t ip_len = 20 + opts.size();
    Bytes ip(ip_len);
    ip[0] = 0x40 | (ihl ? *ihl : static_cast<std::uint8_t>(ip_len / 4));
    const std::uint16_t total = tot_len ? *tot_len : static_cast<std::uint16_t>(ip_len + l4.size());
    ip[2] = total >> 8;
    ip[3] = total & 0xff;
    ip[4] = 0x12;
    ip[5] = 0x34;
    ip[6] = frag_off >> 8;
    ip[7] = frag_off & 0xff;
    ip[8] = ttl;
    ip[9] = protocol;
    std::memcpy(&ip[12], &saddr, 4);
    std::memcpy(&ip[16], &daddr, 4);
    std::memcpy(&ip[20], opts.data(), opts.size());
    const std::uint16_t c = csum_fold(csum_add(0, ip.data(), ip.size()));
    ip[10] = c >> 8;
    ip[11] = c & 0xff;
    f.insert(f.end(), ip.begin(), ip.end());
    f.insert(f.end(), l4.begin(), l4.end());
    return f;
  }

 private:
  Bytes ip6_packet() const {
    Bytes ext_bytes;
    std::uint8_t first = protocol;
    for (std::size_t i = ext.size(); i-- > 0;) {
      Bytes h{first, 0};
      h.insert(h.end(), ext[i].body.begin(), ext[i].body.end());
      while (h.size() % 8) h.push_back(0);
      h[1] = static_cast<std::uint8_t>(h.size() / 8 - 1);
      h.insert(h.end(), ext_bytes.begin(), ext_bytes.end());
      ext_bytes = h;
      first = ext[i].type;
    }
    const Bytes l4 = transport();
    Bytes ip(40);
    ip[0] = 0x60;
    const std::uint16_t plen =
        payload_len ? *payload_len : static_cast<std::uint16_t>(ext_bytes.size() + l4.size());
    ip[4] = plen >> 8;
    ip[5] = plen & 0xff;
    ip[6] = first;
    ip[7] = ttl;
    std::memcpy(&ip[8], saddr6.data(), 16);
    std::memcpy(&ip[24], daddr6.data(), 16);
    ip.insert(ip.end(), ext_bytes.begin(), ext_bytes.end());
    ip.insert(ip.end(), l4.begin(), l4.end());
    return ip;
  }

  // The pseudo-header sum of the transport checksum.
  std::uint32_t pseudo_sum(std::size_t length) const {
    std::uint8_t tail[4] = {0, 0, 0, protocol};
    std::uint32_t sum = 0;
    if (v6()) {
      sum = csum_add(sum, saddr6.data(), 16);
      sum = csum_add(sum, daddr6.data(), 16);
      const std::uint8_t len[4] = {static_cast<std::uint8_t>(length >> 24),
                                   static_cast<std::uint8_t>(length >> 16),
                                   static_cast<std::uint8_t>(length >> 8),
                                   static_cast<std::uint8_t>(length)};
      sum = csum_add(sum, len, 4);
      return csum_add(sum, tail, 4);
    }
    sum = csum_add(sum, reinterpret_cast<const std::uint8_t*>(&saddr), 4);
    sum = csum_add(sum, reinterpret_cast<const std::uint8_t*>(&daddr), 4);
    const std::uint8_t rest[4] = {0, protocol, static_cast<std::uint8_t>(length >> 8),
                                  static_cast<std::uint8_t>(length & 0xff)};
    return csum_add(sum, rest, 4);
  }

  Bytes transport() const {
    Bytes t;
    std::size_t at = 0;
    if (protocol == 6) {
      t.assign(20, 0);
      t[12] = 5 << 4;
      t[13] = tcp_flags;
      t[14] = 0xff;
      t[15] = 0xff;
      std::uint32_t seq = htonl(1000);
      std::memcpy(&t[4], &seq, 4);
      at = 16;
    } else if (protocol == 17) {
      t.assign(8, 0);
      const std::uint16_t len = static_cast<std::uint16_t>(8 + payload.size());
      t[4] = len >> 8;
      t[5] = len & 0xff;
      at = 6;
    } else if (protocol == 1 || protocol == 58) {
      t.assign(8, 0);
      t[0] = icmp_type;
      t[1] = icmp_code;
      const std::uint32_t rest = htonl(icmp_rest);
      std::memcpy(&t[4], &rest, 4);
      t.insert(t.end(), payload.begin(), payload.end());
      // ICMPv4 sums the message alone; ICMPv6 includes the pseudo-header.
      const std::uint32_t base = protocol == 58 ? pseudo_sum(t.size()) : 0;
      const std::uint16_t c = csum_fold(csum_add(base, t.data(), t.size()));
      t[2] = c >> 8;
      t[3] = c & 0xff;
      return t;
    } else {
      t = payload;
      return t;
    }
    t[0] = sport >> 8;
    t[1] = sport & 0xff;
    t[2] = dport >> 8;
    t[3] = dport & 0xff;
    t.insert(t.end(), payload.begin(), payload.end());
    const std::uint16_t c = csum_fold(csum_add(pseudo_sum(t.size()), t.data(), t.size()));
    t[at] = c >> 8;
    t[at + 1] = c & 0xff;
    return t;
  }
};

// The flow key the program derives from a frame (client -> VIP).
inline mixlb_flow_key flow_of(const Frame& f) {
  mixlb_flow_key k{};
  if (f.v6()) {
    std::memcpy(k.src, f.saddr6.data(), 16);
    std::memcpy(k.dst, f.daddr6.data(), 16);
    k.family = MIXLB_AF_INET6;
  } else {
    k.src[0] = f.saddr;
    k.dst[0] = f.daddr;
    k.family = MIXLB_AF_INET;
  }
  k.sport = htons(f.sport);
  k.dport = htons(f.dport);
  k.proto = f.protocol;
  return k;
}

// The frame with its Ethernet addresses replaced: what L2 DSR must produce.
inline Bytes with_macs(Bytes frame, const Mac& dst, const Mac& src) {
  std::memcpy(&frame[0], dst.data(), 6);
  std::memcpy(&frame[6], src.data(), 6);
  return frame;
}

}  // namespace mixlb::test
