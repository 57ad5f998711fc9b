// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * mixlb's XDP program: parse -> VIP? -> from a peer? -> pick node -> act.
 * The logic lives in lib/ (one concern per header); this file only strings
 * the steps together, keeps the counters and, in a dry-run instance, records
 * the decision.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

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
	struct lb_packet pkt;
	__u32 node = MIXLB_NODE_NONE, slot = MIXLB_SELF_STATS_SLOT, flags = MIXLB_DECIDED_VIP;
	__u64 bytes = ctx->data_end - ctx->data;
	bool hit = false;
	int ret;

	if (lb_parse(ctx, &pkt) != LB_PARSE_OK)
		return decide(XDP_PASS, MIXLB_NODE_NONE, 0, 0, 0);
	vip = vip_lookup(&pkt);
	if (!vip)
		return decide(XDP_PASS, MIXLB_NODE_NONE, 0, 0, 0);
	stats = stats_vip(vip->vip_id);
	if (pkt.kind == LB_KIND_ICMP_ERROR) {
		flags |= MIXLB_DECIDED_ICMP;
		stats_count(MIXLB_CNT_ICMP_ERROR);
	}

	if (peer_sent(ctx)) {
		stats_count(MIXLB_CNT_FROM_PEER);
		if (stats) {
			stats->from_peer_pkts += 1;
			stats->from_peer_bytes += bytes;
		}
		return decide(XDP_PASS, mixlb_self_node_id, 0, vip->vip_id,
			      flags | MIXLB_DECIDED_FROM_PEER);
	}

	ret = ct_select_node(&pkt, vip, &node, &hit);
	if (hit)
		flags |= MIXLB_DECIDED_CT_HIT;
	if (ret < 0)
		goto drop;

	if (node == mixlb_self_node_id) {
		if (stats) {
			stats->local_pkts += 1;
			stats->local_bytes += bytes;
		}
		stats_node(vip->vip_id, MIXLB_SELF_STATS_SLOT, bytes);
		return decide(XDP_PASS, node, 0, vip->vip_id, flags);
	}

	ret = fwd_l2_dsr(ctx, &pkt, node, &slot);
	if (ret < 0)
		goto drop;
	if (stats) {
		stats->fwd_pkts += 1;
		stats->fwd_bytes += bytes;
	}
	stats_node(vip->vip_id, slot, bytes);
	return decide(ret, node, 0, vip->vip_id, flags);

drop:
	stats_drop(stats, -ret);
	return decide(XDP_DROP, node, -ret, vip->vip_id, flags);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
