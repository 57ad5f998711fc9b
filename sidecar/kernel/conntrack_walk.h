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

// CLOCK_MONOTONIC_COARSE in nanoseconds: the clock of the data path's
// bpf_ktime_get_coarse_ns(), which stamps last_seen_ns and created_s.
std::uint64_t coarse_now_ns();

}  // namespace mixlb
