/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The coarse clock, read through the helper at most once per tick and CPU.
 *
 * bpf_ktime_get_coarse_ns() is a helper call two functions deep. On hosts
 * that mitigate return-stack attacks (AMD's SRSO "safe RET", retbleed
 * thunks), every return is expensive: on the 2-core VM of
 * docs/benchmarks.md the one clock read cost about a sixth of an
 * established packet. The coarse clock only moves when the timer tick
 * does, and the tick also moves jiffies, which bpf_jiffies64() reads
 * without a call (the verifier inlines it into one load). So each CPU
 * keeps the clock's last reading with the jiffies it was taken at, and
 * reads the clock again only when jiffies has moved: one helper call per
 * tick (1-10 ms) instead of one per packet. A reading can lag the helper's
 * by at most one tick, which is the coarse clock's own resolution; it
 * never goes backwards on a CPU.
 *
 * A dry-run instance does not write the shared maps: it calls the helper.
 */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "config.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct mixlb_clock);
	__uint(max_entries, 1);
} mixlb_clock SEC(".maps");

/* The coarse clock in ns; *jiffies gets the tick it belongs to. */
static __always_inline __u64 clock_coarse_ns(__u64 *jiffies)
{
	struct mixlb_clock *c;
	__u32 zero = 0;

	*jiffies = bpf_jiffies64();
	if (mixlb_dry_run)
		return bpf_ktime_get_coarse_ns();
	c = bpf_map_lookup_elem(&mixlb_clock, &zero);
	if (!c)
		return bpf_ktime_get_coarse_ns();
	if (c->jiffies != *jiffies) {
		c->ns = bpf_ktime_get_coarse_ns();
		c->jiffies = *jiffies;
	}
	return c->ns;
}
