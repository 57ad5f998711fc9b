/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Counters, all per-CPU so counting is a plain add: one record per VIP, one
 * per (VIP, node), and global arrays of events, drop reasons and
 * bpf_fib_lookup results. A dry-run instance counts nothing.
 */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "config.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct mixlb_vip_stats);
	__uint(max_entries, MIXLB_DEFAULT_MAX_VIPS);
} mixlb_vip_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct mixlb_backend_stats);
	__uint(max_entries, MIXLB_DEFAULT_MAX_VIPS * MIXLB_DEFAULT_MAX_NODES);
} mixlb_vip_node SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, MIXLB_CNT__MAX);
} mixlb_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, MIXLB_DROP__MAX);
} mixlb_drops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, MIXLB_FIB_RET_SLOTS);
} mixlb_fib_rets SEC(".maps");

static __always_inline void stats_bump(void *map, __u32 key)
{
	__u64 *value;

	if (mixlb_dry_run)
		return;
	value = bpf_map_lookup_elem(map, &key);
	if (value)
		*value += 1;
}

static __always_inline void stats_count(enum mixlb_counter counter)
{
	stats_bump(&mixlb_counters, counter);
}

static __always_inline void stats_fib(long rc)
{
	if (rc >= 0 && rc < MIXLB_FIB_RET_SLOTS)
		stats_bump(&mixlb_fib_rets, (__u32)rc);
}

static __always_inline struct mixlb_vip_stats *stats_vip(__u32 vip_id)
{
	if (mixlb_dry_run)
		return NULL;
	return bpf_map_lookup_elem(&mixlb_vip_stats, &vip_id);
}

static __always_inline void stats_node(__u32 vip_id, __u32 slot, __u64 bytes)
{
	struct mixlb_backend_stats *value;
	__u32 key;

	if (mixlb_dry_run || slot >= mixlb_max_nodes)
		return;
	key = vip_id * mixlb_max_nodes + slot;
	value = bpf_map_lookup_elem(&mixlb_vip_node, &key);
	if (value) {
		value->pkts += 1;
		value->bytes += bytes;
	}
}

static __always_inline void stats_drop(struct mixlb_vip_stats *stats, int reason)
{
	if (reason <= 0 || reason >= MIXLB_DROP__MAX)
		return;
	stats_bump(&mixlb_drops, reason);
	if (stats)
		stats->drop_pkts[reason] += 1;
}
