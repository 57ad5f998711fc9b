#include "cluster/member_metadata.h"

#include <fmt/format.h>

#include <sys/socket.h>

#include <cstring>
#include <stdexcept>

#include "cluster/maglev.h"

namespace mixlb {
namespace {

void put(std::vector<std::uint8_t>& out, std::uint64_t value, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
}

// Reads big-endian fields front to back; the first shortfall or bad value
// becomes the error (at the offset where its field starts) and later reads
// return zeros.
class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> bytes) : bytes_(bytes) {}

  std::uint32_t uint(std::size_t n, std::string_view field) {
    if (!error_.empty()) return 0;
    start_ = pos_;
    if (bytes_.size() - pos_ < n) {
      fail(field, fmt::format("needs {} byte(s), {} left", n, bytes_.size() - pos_));
      return 0;
    }
    std::uint32_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v = (v << 8) | bytes_[pos_ + i];
    pos_ += n;
    return v;
  }
  void copy(void* to, std::size_t n, std::string_view field) {
    if (!error_.empty()) return;
    start_ = pos_;
    if (bytes_.size() - pos_ < n) {
      fail(field, fmt::format("needs {} byte(s), {} left", n, bytes_.size() - pos_));
      return;
    }
    std::memcpy(to, bytes_.data() + pos_, n);
    pos_ += n;
  }
  void fail(std::string_view field, const std::string& what) {
    if (error_.empty()) error_ = fmt::format("metadata: {}: {} at offset {}", field, what, start_);
  }
  std::size_t left() const { return bytes_.size() - pos_; }
  const std::string& error() const { return error_; }

 private:
  std::span<const std::uint8_t> bytes_;
  std::size_t pos_ = 0;
  std::size_t start_ = 0;  // where the field being read starts
  std::string error_;
};

}  // namespace

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
  put(out, m.weight, 2);
  out.insert(out.end(), m.mac.begin(), m.mac.end());
  const bool v6 = m.address.is_v6();
  out.push_back(v6 ? 6 : 4);
  const auto* ip = reinterpret_cast<const std::uint8_t*>(m.address.words.data());
  out.insert(out.end(), ip, ip + (v6 ? 16 : 4));
  out.push_back(static_cast<std::uint8_t>((m.app_healthy ? 1 : 0) | (m.restarting ? 2 : 0)));
  out.push_back(static_cast<std::uint8_t>(m.vips.size()));
  for (auto tag : m.vips) put(out, tag, 4);
  return out;
}

std::expected<MemberMetadata, std::string> decode_metadata(std::span<const std::uint8_t> bytes) {
  Reader r(bytes);
  MemberMetadata m;
  const auto magic = r.uint(1, "magic");
  if (magic != kMetadataMagic) r.fail("magic", fmt::format("{:#04x} is not mixlb's {:#04x}", magic, kMetadataMagic));
  const auto version = r.uint(1, "version");
  if (version != kMetadataVersion)
    r.fail("version", fmt::format("{} is not the version this node reads ({})", version, kMetadataVersion));
  m.weight = r.uint(2, "weight");
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
    m.vips.push_back(r.uint(4, "VIP tag"));
  if (r.error().empty() && r.left() != 0) {
    r.uint(0, "end");
    r.fail("end", fmt::format("{} byte(s) after the last field", r.left()));
  }
  if (!r.error().empty()) return std::unexpected(r.error());
  return m;
}

}  // namespace mixlb
