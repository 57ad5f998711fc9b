// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The connection-table sweep done in the kernel: one walk of mixlb_ct with
 * bpf_for_each_map_elem, deleting the idle entries by the same rules as the
 * sidecar's sweeper (sidecar/kernel/conntrack_walk.cc, sweep_reason). This is
 * the engine a BPF timer would run; the sidecar does not load it. The
 * conntrack benchmark runs it (BPF_PROG_RUN of a syscall program, on the
 * real program's table by fd) beside the sidecar's sweep of the same full
 * table, which is how docs/benchmarks.md chose where the sweeper lives.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "lib/shared_maps.h"

#define SWEEP_TCP 6
#define SWEEP_UDP 17

/*
 * The rules of a run (0: never), its clock (CLOCK_MONOTONIC_COARSE, which
 * stamps last_seen_ns; a syscall program may not read it, a timer's callback
 * would) and what it did: set and read by the caller.
 */
__u64 now_ns;
__u64 udp_idle_ns;
__u64 tcp_closing_idle_ns;
__u64 tcp_idle_ns;
__u64 walked;
__u64 removed;

static __always_inline bool past(__u64 idle, __u64 limit)
{
	return limit != 0 && idle > limit;
}

static long sweep_one(struct bpf_map *map, struct mixlb_flow_key *key, struct mixlb_ct_value *value,
		      __u64 *now)
{
	__u64 idle, limit;

	walked += 1;
	if (value->last_seen_ns >= *now)
		return 0;
	idle = *now - value->last_seen_ns;
	if (key->proto == SWEEP_UDP)
		limit = udp_idle_ns;
	else if (key->proto != SWEEP_TCP)
		return 0;
	else if (value->flags & (MIXLB_CT_SEEN_FIN | MIXLB_CT_SEEN_RST))
		limit = tcp_closing_idle_ns;
	else
		limit = tcp_idle_ns;
	if (past(idle, limit) && bpf_map_delete_elem(map, key) == 0)
		removed += 1;
	return 0;
}

SEC("syscall")
int ct_sweep(void *ctx)
{
	__u64 now = now_ns;

	walked = 0;
	removed = 0;
	bpf_for_each_map_elem(&mixlb_ct, sweep_one, &now, 0);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
