#pragma once
// Test frames, built field by field: Ethernet, IPv4 (with options, fragment
// bits and lying lengths on demand) and TCP or UDP, with correct checksums
// unless a case wants them wrong. Tests compare the program's output with
// frames built here, byte for byte.
#include <arpa/inet.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace mixlb::test {

using Mac = std::array<std::uint8_t, 6>;
using Bytes = std::vector<std::uint8_t>;

constexpr std::uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10;

inline std::uint32_t ip4(const char* text) {
  in_addr a{};
  inet_pton(AF_INET, text, &a);
  return a.s_addr;  // network order
}

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
  std::uint16_t ethertype = 0x0800;
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

  Bytes build() const {
    Bytes f(14);
    std::memcpy(&f[0], dst_mac.data(), 6);
    std::memcpy(&f[6], src_mac.data(), 6);
    f[12] = ethertype >> 8;
    f[13] = ethertype & 0xff;
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
  Bytes transport() const {
    Bytes t;
    if (protocol == 6) {
      t.assign(20, 0);
      t[12] = 5 << 4;
      t[13] = tcp_flags;
      t[14] = 0xff;
      t[15] = 0xff;
      std::uint32_t seq = htonl(1000);
      std::memcpy(&t[4], &seq, 4);
    } else if (protocol == 17) {
      t.assign(8, 0);
      const std::uint16_t len = static_cast<std::uint16_t>(8 + payload.size());
      t[4] = len >> 8;
      t[5] = len & 0xff;
    } else {
      t = payload;
      return t;
    }
    t[0] = sport >> 8;
    t[1] = sport & 0xff;
    t[2] = dport >> 8;
    t[3] = dport & 0xff;
    t.insert(t.end(), payload.begin(), payload.end());
    // Checksum over the pseudo-header and the segment.
    std::uint8_t pseudo[12];
    std::memcpy(pseudo, &saddr, 4);
    std::memcpy(pseudo + 4, &daddr, 4);
    pseudo[8] = 0;
    pseudo[9] = protocol;
    pseudo[10] = static_cast<std::uint8_t>(t.size() >> 8);
    pseudo[11] = static_cast<std::uint8_t>(t.size() & 0xff);
    const std::size_t at = protocol == 6 ? 16 : 6;
    const std::uint16_t c = csum_fold(csum_add(csum_add(0, pseudo, 12), t.data(), t.size()));
    t[at] = c >> 8;
    t[at + 1] = c & 0xff;
    return t;
  }
};

// The frame with its Ethernet addresses replaced: what L2 DSR must produce.
inline Bytes with_macs(Bytes frame, const Mac& dst, const Mac& src) {
  std::memcpy(&frame[0], dst.data(), 6);
  std::memcpy(&frame[6], src.data(), 6);
  return frame;
}

}  // namespace mixlb::test
