// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * mixlb's XDP program: parse -> VIP? -> from a peer? -> pick node -> act.
 * The logic lives in lib/ (one concern per header); this file only strings
 * the steps together, keeps the counters and, in a dry-run instance, records
 * the decision.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "lib/clock.h"
#include "lib/conntrack.h"
#include "lib/fwd.h"

/*
 * The ABI enums are only used as constants, so clang would leave them out of
 * the object's BTF. These read-only globals keep them in, so bpftool and the
 * ABI test can check the C++ name tables against the enums themselves.
 */
const volatile enum mixlb_drop_reason mixlb_btf_drop_reason = MIXLB_DROP_NONE;
const volatile enum mixlb_counter mixlb_btf_counter = MIXLB_CNT_CT_HIT;

static __always_inline int decide(int verdict, __u32 node, int drop, __u32 vip_id, __u32 flags)
{
	if (mixlb_dry_run) {
		mixlb_last_decision.verdict = verdict;
		mixlb_last_decision.node_id = node;
		mixlb_last_decision.drop = drop;
		mixlb_last_decision.vip_id = vip_id;
		mixlb_last_decision.flags = flags;
	}
	return verdict;
}

SEC("xdp")
int mixlb_xdp(struct xdp_md *ctx)
{
	struct mixlb_vip_value *vip;
	struct mixlb_vip_stats *stats;
	struct mixlb_ct_value *entry, *half = NULL, *known, decision;
	struct mixlb_ct_cached *hit = NULL;
	struct lb_packet pkt;
	__u32 node = MIXLB_NODE_NONE, vip_id = 0, slot_hint = MIXLB_SELF_STATS_SLOT, hash = 0, cache_idx = 0;
	__u32 slot = MIXLB_SELF_STATS_SLOT, flags = MIXLB_DECIDED_VIP, peer = MIXLB_NODE_NONE;
	__u64 bytes = ctx->data_end - ctx->data;
	bool cached = false;
	int ret = 0;

	if (lb_parse(ctx, &pkt) != LB_PARSE_OK || !vip_maybe(&pkt))
		return decide(XDP_PASS, MIXLB_NODE_NONE, 0, 0, 0);
	if (pkt.kind == LB_KIND_ICMP_ERROR)
		flags |= MIXLB_DECIDED_ICMP;

	/* One clock reading per VIP packet (clock.h: no helper call within a
	 * tick): the cache's tick, the entry's last_seen, a new entry's times
	 * and the next-hop cache's expiry all use it. */
	pkt.now_ns = clock_coarse_ns(&pkt.now_jiffies);

	/* A SYN opens a new connection: the current tables decide it and are not
	 * asked. Any other packet asks this CPU's cache of the connection table
	 * first (conntrack.h), with an index of its own. */
	if (!pkt.is_syn && pkt.kind == LB_KIND_FLOW) {
		cache_idx = mixlb_ct_cache_slot(&pkt.flow);
		hit = ct_cache_hit(&pkt, cache_idx);
	}

	/* A peer's frame was balanced there: it is delivered here, never
	 * balanced again. A copy of the flow's last delivery answers without
	 * the peer's and the VIP's hash lookups; a frame the peer filter rules
	 * out (the router's) looks no further for a peer. */
	if (hit && (hit->value.flags & MIXLB_CT_PEER_COPY)) {
		if (peer_maybe(ctx)) {
			peer = hit->value.node_id;
			vip_id = hit->value.vip_id;
		} else {
			hit = NULL;
		}
	} else {
		peer = peer_sent(ctx);
		if (peer != MIXLB_NODE_NONE) {
			vip = vip_lookup(&pkt);
			if (!vip)
				return decide(XDP_PASS, MIXLB_NODE_NONE, 0, 0, 0);
			vip_id = vip->vip_id;
			if (pkt.is_syn)
				ct_record_origin(&pkt, peer);
			else
				ct_cache_put_peer(&pkt, cache_idx, vip_id, peer);
		}
	}
	if (peer != MIXLB_NODE_NONE) {
		stats_count(MIXLB_CNT_FROM_PEER);
		stats = stats_vip(vip_id);
		if (stats) {
			stats->from_peer_pkts += 1;
			stats->from_peer_bytes += bytes;
		}
		return decide(XDP_PASS, mixlb_self_node_id, 0, vip_id, flags | MIXLB_DECIDED_FROM_PEER);
	}

	/* The packet after a SYN finds the SYN's decision in the half-open
	 * table -- also over the entry of an earlier, closed connection with
	 * the same 5-tuple. The flow hash serves the half-open slot and Maglev,
	 * so only a flow the table does not know computes it. */
	entry = NULL;
	if (!pkt.is_syn) {
		entry = ct_cached(&pkt, hit);
		cached = entry != NULL;
		if (!cached)
			entry = ct_lookup(&pkt);
	}
	known = entry;
	if (!entry || ct_ended(entry)) {
		hash = mixlb_flow_hash(&pkt.flow);
		if (ct_half_open(&pkt, hash, &decision)) {
			half = &decision;
			entry = NULL;
			known = half;
		}
	}
	if (known) {
		if (pkt.kind == LB_KIND_FLOW)
			stats_count(MIXLB_CNT_CT_HIT);
		flags |= MIXLB_DECIDED_CT_HIT;
		node = known->node_id;
		vip_id = known->vip_id;
		slot_hint = known->stats_slot;
		if (entry && !cached) {
			ct_touch(entry, &pkt);
			ct_cache_put(&pkt, cache_idx, entry);
		}
		stats = stats_vip(vip_id);
	} else {
		vip = vip_lookup(&pkt);
		if (!vip)
			return decide(XDP_PASS, MIXLB_NODE_NONE, 0, 0, 0);
		vip_id = vip->vip_id;
		stats = stats_vip(vip_id);
		if (pkt.kind == LB_KIND_FLOW)
			stats_count(MIXLB_CNT_CT_MISS);
		ret = maglev_pick(vip, hash, &node);
		if (ret < 0)
			goto drop;
	}
	if (pkt.kind == LB_KIND_ICMP_ERROR)
		stats_count(MIXLB_CNT_ICMP_ERROR);

	if (node == mixlb_self_node_id) {
		if (half)
			ct_promote(&pkt, hash, half);
		else if (!entry && (pkt.is_syn || pkt.flow.proto == LB_IPPROTO_UDP))
			ct_insert_new(&pkt, hash, vip_id, node, MIXLB_SELF_STATS_SLOT);
		else if (!entry && !mixlb_dry_run && ct_local_alive(ctx, &pkt))
			ct_insert(&pkt, vip_id, node, MIXLB_SELF_STATS_SLOT);
		if (stats) {
			stats->local_pkts += 1;
			stats->local_bytes += bytes;
		}
		stats_node(vip_id, MIXLB_SELF_STATS_SLOT, bytes);
		return decide(XDP_PASS, node, 0, vip_id, flags);
	}

	ret = fwd_l2_dsr(ctx, &pkt, node, slot_hint, &slot);
	/* A new flow is pinned to its node even when this packet cannot leave. */
	if (half)
		ct_promote(&pkt, hash, half);
	else if (!entry && (pkt.is_syn || pkt.flow.proto == LB_IPPROTO_UDP))
		ct_insert_new(&pkt, hash, vip_id, node, slot);
	else if (!entry)
		ct_insert(&pkt, vip_id, node, slot);
	if (ret < 0)
		goto drop;
	if (stats) {
		stats->fwd_pkts += 1;
		stats->fwd_bytes += bytes;
	}
	stats_node(vip_id, slot, bytes);
	return decide(ret, node, 0, vip_id, flags);

drop:
	stats_drop(stats, -ret);
	return decide(XDP_DROP, node, -ret, vip_id, flags);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
