/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Bit filters in front of hash lookups: a clear bit proves "not one of ours"
 * with one (inlined) array read, so traffic that is not for a VIP, and frames
 * that do not come from a peer, skip the hash lookups. A set bit means
 * "maybe": the hash lookup behind it decides. The sidecar writes the bits.
 */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "flow_hash.h"
#include "mixlb_abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct mixlb_filter);
	__uint(max_entries, 1);
} mixlb_vip_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct mixlb_filter);
	__uint(max_entries, 1);
} mixlb_peer_filter SEC(".maps");

static __always_inline bool filter_maybe(void *map, const __u32 *words)
{
	struct mixlb_filter *filter;
	__u32 zero = 0, bit = mixlb_filter_bit(words);

	filter = bpf_map_lookup_elem(map, &zero);
	if (!filter)
		return true;
	return (filter->words[(bit / 64) & (MIXLB_FILTER_WORDS - 1)] >> (bit % 64)) & 1;
}
