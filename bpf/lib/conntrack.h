/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The connection table: 5-tuple -> serving node, in an LRU hash so a full
 * table evicts the coldest flow instead of refusing new ones. A flow found
 * here keeps its node whatever the Maglev tables say since; that is what
 * keeps established connections in place when membership or weights change.
 *
 * Policy (docs/architecture.md, tested in test/bpf/):
 *   - TCP: a SYN creates the entry. A non-SYN packet that misses (a flow the
 *     router moved here mid-stream) takes the Maglev answer, which every
 *     node shares, and is inserted too, marked MIXLB_CT_FROM_NON_SYN.
 *   - UDP: the first packet creates the entry.
 *   - Every hit refreshes last_seen_ns and ORs in the TCP flags seen.
 *   - An ICMP error about a flow reads the table and Maglev but never
 *     creates or refreshes an entry: it is not traffic of the flow.
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

static __always_inline void ct_insert(const struct lb_packet *pkt, __u32 node, __u64 now)
{
	struct mixlb_ct_value fresh = {};

	if (mixlb_dry_run)
		return;
	fresh.last_seen_ns = now;
	fresh.node_id = node;
	fresh.flags = pkt->tcp_flags;
	if (pkt->flow.proto == LB_IPPROTO_TCP && !pkt->is_syn) {
		fresh.flags |= MIXLB_CT_FROM_NON_SYN;
		stats_count(MIXLB_CNT_CT_NON_SYN_MISS);
	}
	if (bpf_map_update_elem(&mixlb_ct, &pkt->flow, &fresh, BPF_ANY) == 0)
		stats_count(MIXLB_CNT_CT_INSERT);
	else
		stats_count(MIXLB_CNT_CT_INSERT_FAIL);
}

/*
 * Picks the node of the flow: the table's entry, else Maglev (inserting the
 * answer for traffic of the flow). Returns 0 or a negative drop reason;
 * *hit says whether the table answered.
 */
static __always_inline int ct_select_node(const struct lb_packet *pkt,
					  const struct mixlb_vip_value *vip, __u32 *node, bool *hit)
{
	struct mixlb_ct_value *entry;
	__u64 now;
	int ret;

	entry = bpf_map_lookup_elem(&mixlb_ct, &pkt->flow);
	if (entry) {
		*hit = true;
		*node = entry->node_id;
		stats_count(MIXLB_CNT_CT_HIT);
		if (mixlb_dry_run || pkt->kind != LB_KIND_FLOW)
			return 0;
		entry->last_seen_ns = bpf_ktime_get_ns();
		if ((entry->flags & pkt->tcp_flags) != pkt->tcp_flags)
			entry->flags |= pkt->tcp_flags;
		return 0;
	}

	*hit = false;
	stats_count(MIXLB_CNT_CT_MISS);
	ret = maglev_pick(vip, mixlb_flow_hash(&pkt->flow), node);
	if (ret < 0)
		return ret;
	if (pkt->kind == LB_KIND_FLOW) {
		now = bpf_ktime_get_ns();
		ct_insert(pkt, *node, now);
	}
	return 0;
}
