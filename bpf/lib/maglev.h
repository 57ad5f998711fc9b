/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Maglev lookup tables, built in user space. One flat array holds every VIP's
 * table twice (the double buffer): slot s of half h of VIP v lives at
 * ((v * 2) + h) * ring_size + s. The sidecar fills the inactive half and then
 * flips the VIP's active_half, so a packet reads one complete table.
 */
#pragma once

#include "config.h"
#include "vip.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, MIXLB_DEFAULT_MAX_VIPS * MIXLB_RING_HALVES * MIXLB_DEFAULT_RING_SIZE);
} mixlb_maglev SEC(".maps");

/* Stores the node for `hash` in *node; returns 0 or a negative drop reason. */
static __always_inline int maglev_pick(const struct mixlb_vip_value *vip, __u32 hash,
				       __u32 *node)
{
	__u32 ring = mixlb_ring_size;
	__u32 half = vip->active_half & 1;
	__u32 idx = (vip->vip_id * MIXLB_RING_HALVES + half) * ring + hash % ring;
	__u32 *slot = bpf_map_lookup_elem(&mixlb_maglev, &idx);

	if (!slot)
		return -MIXLB_DROP_TABLE_LOOKUP;
	if (*slot == MIXLB_NODE_NONE)
		return -MIXLB_DROP_NO_BACKEND;
	*node = *slot;
	return 0;
}
