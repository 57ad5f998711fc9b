#include "cluster/member_metadata.h"

#include <fmt/format.h>

#include <sys/socket.h>

#include <cstring>
#include <stdexcept>

#include "cluster/maglev.h"
#include "common/wire.h"

namespace mixlb {

std::uint32_t vip_tag(const mixlb_vip_key& key) {
  std::uint8_t bytes[sizeof(key)];
  std::memcpy(bytes, &key, sizeof(key));
  std::uint32_t h = 2166136261u;
  for (auto b : bytes) {
    h ^= b;
    h *= 16777619u;
  }
  return h;
}

std::vector<std::uint8_t> encode_metadata(const MemberMetadata& m) {
  if (m.vips.size() > kMaxPublishedVips)
    throw std::length_error(fmt::format("{} VIP ports do not fit in the gossip metadata (at most {})",
                                        m.vips.size(), kMaxPublishedVips));
  std::vector<std::uint8_t> out;
  out.push_back(kMetadataMagic);
  out.push_back(kMetadataVersion);
  put_be(out, m.weight, 2);
  out.insert(out.end(), m.mac.begin(), m.mac.end());
  const bool v6 = m.address.is_v6();
  out.push_back(v6 ? 6 : 4);
  const auto* ip = reinterpret_cast<const std::uint8_t*>(m.address.words.data());
  out.insert(out.end(), ip, ip + (v6 ? 16 : 4));
  out.push_back(static_cast<std::uint8_t>((m.app_healthy ? 1 : 0) | (m.restarting ? 2 : 0)));
  out.push_back(static_cast<std::uint8_t>(m.vips.size()));
  for (auto tag : m.vips) put_be(out, tag, 4);
  return out;
}

std::expected<MemberMetadata, std::string> decode_metadata(std::span<const std::uint8_t> bytes) {
  WireReader r(bytes, "metadata");
  MemberMetadata m;
  const auto magic = r.uint(1, "magic");
  if (magic != kMetadataMagic) r.fail("magic", fmt::format("{:#04x} is not mixlb's {:#04x}", magic, kMetadataMagic));
  const auto version = r.uint(1, "version");
  if (version != kMetadataVersion)
    r.fail("version", fmt::format("{} is not the version this node reads ({})", version, kMetadataVersion));
  m.weight = static_cast<std::uint32_t>(r.uint(2, "weight"));
  if (m.weight > kMaxMaglevWeight)
    r.fail("weight", fmt::format("{} is over the maximum {}", m.weight, kMaxMaglevWeight));
  r.copy(m.mac.data(), m.mac.size(), "mac");
  const auto family = r.uint(1, "address family");
  if (r.error().empty()) {
    if (family == 4) {
      m.address.family = AF_INET;
      r.copy(m.address.words.data(), 4, "address");
    } else if (family == 6) {
      m.address.family = AF_INET6;
      r.copy(m.address.words.data(), 16, "address");
    } else {
      r.fail("address family", fmt::format("{} is neither 4 nor 6", family));
    }
  }
  const auto flags = r.uint(1, "flags");
  if (flags > 3) r.fail("flags", fmt::format("unknown bits {:#04x}", flags & ~3u));
  m.app_healthy = (flags & 1) != 0;
  m.restarting = (flags & 2) != 0;
  const auto count = r.uint(1, "VIP count");
  for (std::uint32_t i = 0; i < count && r.error().empty(); ++i)
    m.vips.push_back(static_cast<std::uint32_t>(r.uint(4, "VIP tag")));
  r.expect_end();
  if (!r.error().empty()) return std::unexpected(r.error());
  return m;
}

}  // namespace mixlb
