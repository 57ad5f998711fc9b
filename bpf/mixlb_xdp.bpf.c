// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * mixlb's XDP program: parse -> VIP? -> from a peer? -> pick node -> act.
 * The logic lives in lib/ (one concern per header); this file only strings
 * the steps together and keeps the counters.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "lib/conntrack.h"
#include "lib/fwd.h"

/*
 * The ABI enums are only used as constants, so clang would leave them out of
 * the object's BTF. These two read-only globals keep them in, so bpftool and
 * the ABI test can check the C++ name tables against the enum itself.
 */
const volatile enum mixlb_drop_reason mixlb_btf_drop_reason = MIXLB_DROP_NONE;
const volatile enum mixlb_counter mixlb_btf_counter = MIXLB_CNT_CT_HIT;

SEC("xdp")
int mixlb_xdp(struct xdp_md *ctx)
{
	struct mixlb_vip_value *vip;
	struct mixlb_vip_stats *stats;
	struct lb_packet pkt;
	__u32 node = MIXLB_NODE_NONE;
	__u64 bytes = ctx->data_end - ctx->data;
	int ret;

	if (lb4_parse(ctx, &pkt) != LB_PARSE_OK)
		return XDP_PASS;
	vip = vip_lookup(&pkt);
	if (!vip)
		return XDP_PASS;
	stats = stats_vip(vip->vip_id);

	if (peer_sent(ctx)) {
		if (stats) {
			stats->from_peer_pkts += 1;
			stats->from_peer_bytes += bytes;
		}
		return XDP_PASS;
	}

	ret = ct_select_node(&pkt, vip, &node);
	if (ret < 0)
		goto drop;

	if (node == mixlb_self_node_id) {
		if (stats) {
			stats->local_pkts += 1;
			stats->local_bytes += bytes;
		}
		return XDP_PASS;
	}

	ret = fwd_l2_dsr(ctx, &pkt, node);
	if (ret < 0)
		goto drop;
	if (stats) {
		stats->fwd_pkts += 1;
		stats->fwd_bytes += bytes;
	}
	return ret;

drop:
	stats_drop(stats, -ret);
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
