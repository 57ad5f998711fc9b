/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The connection table: 5-tuple -> serving node, in an LRU hash so a full
 * table evicts the coldest flow instead of refusing new ones. A flow found
 * here keeps its node whatever the Maglev tables say since; that is what
 * keeps established connections in place when membership changes.
 *
 * Policy (docs/architecture.md): a miss asks Maglev and inserts the answer,
 * for a SYN and for a non-SYN packet alike (the latter marked
 * MIXLB_CT_FROM_NON_SYN): a flow that arrives here mid-stream, after an ECMP
 * change, is pinned to the node every node's table agrees on.
 */
#pragma once

#include "flow_hash.h"
#include "maglev.h"
#include "stats.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct mixlb_flow_key);
	__type(value, struct mixlb_ct_value);
	__uint(max_entries, 65536);
} mixlb_ct SEC(".maps");

/* Picks the node of the flow: the table's entry, else Maglev (and inserts). */
static __always_inline int ct_select_node(const struct lb_packet *pkt,
					  const struct mixlb_vip_value *vip, __u32 *node)
{
	struct mixlb_ct_value *entry, fresh;
	__u64 now = bpf_ktime_get_ns();
	int ret;

	entry = bpf_map_lookup_elem(&mixlb_ct, &pkt->flow);
	if (entry) {
		stats_count(MIXLB_CNT_CT_HIT);
		entry->last_seen_ns = now;
		if ((entry->flags & pkt->tcp_flags) != pkt->tcp_flags)
			entry->flags |= pkt->tcp_flags;
		*node = entry->node_id;
		return 0;
	}

	stats_count(MIXLB_CNT_CT_MISS);
	ret = maglev_pick(vip, mixlb_flow_hash(&pkt->flow), node);
	if (ret < 0)
		return ret;

	fresh.last_seen_ns = now;
	fresh.node_id = *node;
	fresh.flags = pkt->tcp_flags | (pkt->is_syn ? 0 : MIXLB_CT_FROM_NON_SYN);
	if (bpf_map_update_elem(&mixlb_ct, &pkt->flow, &fresh, BPF_ANY) == 0)
		stats_count(MIXLB_CNT_CT_INSERT);
	else
		stats_count(MIXLB_CNT_CT_INSERT_FAIL);
	return 0;
}
