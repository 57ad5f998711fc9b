#pragma once
// `mixlbctl ct`: the entries of the connection table that match a filter,
// read from the pinned table (kernel/conntrack_walk.h) on the walker's
// thread.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kernel/abi.h"
#include "kernel/address.h"
#include "kernel/datapath.h"

namespace mixlb {

struct CtFilter {
  std::optional<Address> vip;
  std::optional<std::uint16_t> vip_port;  // with vip only
  std::optional<std::uint8_t> proto;      // 6 or 17, with vip only
  std::optional<std::uint32_t> node_id;
  std::optional<Address> client;

  bool matches(const mixlb_flow_key& key, const mixlb_ct_value& value) const;
};

// Reads `--vip` text into `filter`: ADDR, ADDR:PORT, [IPv6], [IPv6]:PORT,
// each with an optional /tcp or /udp. The error says what is wrong.
std::optional<std::string> parse_ct_vip(std::string_view text, CtFilter& filter);

struct CtEntry {
  mixlb_flow_key key{};
  mixlb_ct_value value{};
};

struct CtListing {
  std::size_t entries = 0;   // in the table
  std::size_t capacity = 0;  // its max_entries
  std::size_t matched = 0;   // of them, matching the filter
  std::vector<CtEntry> shown;  // the first `limit` of those, most recent first
  std::uint64_t now_ns = 0;    // coarse_now_ns() when the walk began
};

// Walks the table behind `fd`: counts what matches, keeps up to `limit`.
DpResult<CtListing> list_conntrack(int fd, const CtFilter& filter, std::size_t limit);

// "10.0.1.2:41000" or "[fd00:1::2]:41000"; the VIP side the same way.
std::string flow_client(const mixlb_flow_key& key);
std::string flow_vip(const mixlb_flow_key& key);
// "syn,fin" from the entry's flags ("-" for none).
std::string ct_flags_text(std::uint32_t flags);

}  // namespace mixlb
