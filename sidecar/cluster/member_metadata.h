#pragma once
// What a mixlb node publishes about itself in its gossip metadata, and how
// it is laid out on the wire. Every node builds its Maglev tables from
// what the members publish, so the layout is versioned and decoding is
// strict: a member whose metadata does not decode is left out of the
// tables (and shown with the reason in `mixlbctl members`), never guessed.
//
//   0      1      2         4                 10     11
//   +------+------+---------+-----------------+------+----------------+
//   | 0x4D | 0x01 | weight  | MAC (6 bytes)   | fam  | address (4|16) |
//   +------+------+---------+-----------------+------+----------------+
//   | flags | count (u8) | count × VIP tag (u32) |
//   +-------+------------+-----------------------+
//
// All integers are big-endian. `fam` is 4 or 6. flags bit 0: the node's
// app serves something (a service passes its check, or it has services
// without checks); bit 1: the sidecar is stopping for a restart (its data
// path stays and serves what it has; peers send it no new flows until its
// successor publishes again). Nodes of mixlb 0.1.0 refuse bit 1 as unknown.
// The VIP tags name the VIP ports this node serves now (vip_tag() of each):
// those it is configured to serve whose service passes its check. A node
// serves a VIP port exactly when it is alive, its app serves something, it
// is not restarting and it lists the tag, so one failing service takes it
// out of that service's ports only. (0.1.0 nodes list every configured port
// and clear bit 0 when their one check fails: both read the same under this
// rule, so mixed clusters build the same tables.) The weight is the node's
// Maglev weight, 0 when drained.
#include <cstdint>
#include <expected>
#include <span>
#include <string>
#include <vector>

#include "kernel/address.h"
#include "kernel/netlink.h"
#include "mixlb_abi.h"

namespace mixlb {

constexpr std::uint8_t kMetadataMagic = 0x4D;  // 'M'
constexpr std::uint8_t kMetadataVersion = 1;
// The gossip layer's bound (gossip::Config::max_metadata_size).
constexpr std::size_t kMaxMetadataSize = 512;
// Header and a v6 address leave room for this many VIP ports.
constexpr std::size_t kMaxPublishedVips = (kMaxMetadataSize - 29) / 4;

struct MemberMetadata {
  std::uint32_t weight = 1;
  MacAddress mac{};
  Address address;  // where the data path forwards to this node
  bool app_healthy = false;  // its app serves something (bit 0 above)
  bool restarting = false;
  std::vector<std::uint32_t> vips;  // tags of the VIP ports it serves now

  friend bool operator==(const MemberMetadata&, const MemberMetadata&) = default;
};

// A stable 32-bit name of one VIP port (FNV-1a over the key's bytes), the
// same on every node that configures it.
std::uint32_t vip_tag(const mixlb_vip_key& key);

// Throws std::length_error beyond kMaxPublishedVips VIP ports.
std::vector<std::uint8_t> encode_metadata(const MemberMetadata& metadata);
// The error says what is wrong and at which byte offset.
std::expected<MemberMetadata, std::string> decode_metadata(std::span<const std::uint8_t> bytes);

}  // namespace mixlb
