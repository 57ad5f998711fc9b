/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Counters: one per-CPU record per VIP, and a per-CPU array of global
 * counters. Per-CPU, so incrementing is a plain add with no atomics.
 */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "mixlb_abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct mixlb_vip_stats);
	__uint(max_entries, 16);
} mixlb_vip_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, MIXLB_CNT__MAX);
} mixlb_counters SEC(".maps");

static __always_inline struct mixlb_vip_stats *stats_vip(__u32 vip_id)
{
	return bpf_map_lookup_elem(&mixlb_vip_stats, &vip_id);
}

static __always_inline void stats_count(enum mixlb_counter counter)
{
	__u32 key = counter;
	__u64 *value = bpf_map_lookup_elem(&mixlb_counters, &key);

	if (value)
		*value += 1;
}

static __always_inline void stats_drop(struct mixlb_vip_stats *stats, int reason)
{
	if (stats && reason > 0 && reason < MIXLB_DROP__MAX)
		stats->drop_pkts[reason] += 1;
}
