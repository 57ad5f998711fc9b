#pragma once
// Reading the pinned connection table from user space: opening it (checked
// to be the table) and walking it in batches.
//
// The table is an LRU hash whose element count the kernel does not expose,
// so every question about its contents is a walk. walk_conntrack() reads
// keys and values in batches (BPF_MAP_LOOKUP_BATCH, a few thousand entries
// per system call): a full table of 65,536 entries is 16 calls and 4 MiB
// copied. It runs concurrently with the data path, which may insert and
// evict meanwhile, so what it sees is a census, not a snapshot. It only
// reads. Its cost is the kernel's (each hash bucket is locked and copied on
// its own): 0.4 to 1.5 µs an entry, so callers run it off the io_context's
// thread (metrics/conntrack_census.h, ConntrackWalker).
#include <linux/bpf.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "kernel/abi.h"
#include "kernel/datapath.h"
#include "kernel/unique_fd.h"

namespace mixlb {

// Opens <pin_dir>/mixlb_ct and checks that it is an LRU hash with the
// connection table's key and value sizes.
DpResult<UniqueFd> open_pinned_conntrack(const std::string& pin_dir);

// The map information of the table behind `fd` (its max_entries among it),
// checked as open_pinned_conntrack() checks it.
DpResult<bpf_map_info> conntrack_info(int fd, const std::string& what);

// Calls `visit` for every entry of the table behind `fd`, `batch` entries
// per system call (grown when one hash bucket holds more).
DpResult<void> walk_conntrack(int fd, std::uint32_t batch,
                              const std::function<void(const mixlb_flow_key&, const mixlb_ct_value&)>& visit);

// The sweeper's rules: how long an entry may go without a packet, by what
// its flow last showed. 0 keeps such entries forever.
struct SweepRules {
  std::uint64_t udp_idle_ns = 0;
  std::uint64_t tcp_closing_idle_ns = 0;  // the client sent FIN or RST
  std::uint64_t tcp_idle_ns = 0;          // any other TCP flow
};

enum class SweepReason : std::uint8_t { kUdpIdle, kTcpClosing, kTcpIdle };

// Which rule, if any, removes this entry at `now_ns`. An entry seen after
// `now_ns` (a packet during the walk) is never idle.
std::optional<SweepReason> sweep_reason(const SweepRules& rules, const mixlb_flow_key& key,
                                        const mixlb_ct_value& value, std::uint64_t now_ns);

struct SweepResult {
  std::size_t walked = 0;
  std::size_t udp_idle = 0, tcp_closing = 0, tcp_idle = 0;  // removed, by reason
  std::size_t kept_late = 0;  // doomed at the walk, then seen again before the delete
  std::uint64_t took_ns = 0;
  std::size_t removed() const { return udp_idle + tcp_closing + tcp_idle; }
};

// One sweep of the table behind `fd`: a walk that collects the entries a
// rule removes, then, for each, a fresh lookup and the delete if the rule
// still holds. A packet that refreshes an entry between that lookup and the
// delete (microseconds) loses the entry anyway; the flow's next packet is
// then balanced afresh, which puts it on the same node unless the members
// changed.
DpResult<SweepResult> sweep_conntrack(int fd, const SweepRules& rules);

// CLOCK_MONOTONIC_COARSE in nanoseconds: the clock of the data path's
// bpf_ktime_get_coarse_ns(), which stamps last_seen_ns and created_s.
std::uint64_t coarse_now_ns();

}  // namespace mixlb
