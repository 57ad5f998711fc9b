/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Forwarding to a peer by L2 direct server return: the IP packet is left as
 * it is (destination still the VIP; a VLAN tag stays) and only the Ethernet
 * addresses change. Both MACs come from bpf_fib_lookup towards the peer's
 * node address, in that address's family (an IPv6 VIP may be served by a
 * peer known by its IPv4 address: L2 does not mind), never from
 * configuration. A failed lookup, NO_NEIGH included, is a drop with its own
 * reason: the packet was not ours to deliver locally.
 *
 * A tagged frame leaves by XDP_TX on its own VLAN: the lookup names the VLAN
 * device as egress, but the frame still carries the tag and belongs on the
 * port it arrived on.
 */
#pragma once

#include "parse.h"
#include "peer.h"
#include "stats.h"

#define LB_AF_INET 2
#define LB_AF_INET6 10

static __always_inline int fib_drop_reason(long rc)
{
	switch (rc) {
	case BPF_FIB_LKUP_RET_NO_NEIGH:
		return -MIXLB_DROP_FIB_NO_NEIGH;
	case BPF_FIB_LKUP_RET_FWD_DISABLED:
		return -MIXLB_DROP_FIB_FWD_DISABLED;
	case BPF_FIB_LKUP_RET_FRAG_NEEDED:
		return -MIXLB_DROP_FIB_FRAG_NEEDED;
	default:
		return -MIXLB_DROP_FIB_OTHER;
	}
}

/*
 * Returns XDP_TX or XDP_REDIRECT, or a negative drop reason; *slot gets the
 * node's column in the per-(VIP, node) counters.
 */
static __always_inline int fwd_l2_dsr(struct xdp_md *ctx, const struct lb_packet *pkt,
				      __u32 node_id, __u32 *slot)
{
	struct ethhdr *eth;
	struct bpf_fib_lookup fib = {};
	struct mixlb_node *node;
	bool tagged;
	long rc;

	node = bpf_map_lookup_elem(&mixlb_nodes, &node_id);
	if (!node)
		return -MIXLB_DROP_UNKNOWN_NODE;
	*slot = node->stats_slot;

	if (node->family == MIXLB_AF_INET6) {
		fib.family = LB_AF_INET6;
		__builtin_memcpy(fib.ipv6_dst, node->addr, sizeof(fib.ipv6_dst));
	} else {
		fib.family = LB_AF_INET;
		fib.ipv4_dst = node->addr[0];
	}
	fib.tot_len = pkt->l3_len;
	fib.ifindex = ctx->ingress_ifindex;
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	stats_fib(rc);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return fib_drop_reason(rc);

	eth = lb_ptr(ctx, 0, sizeof(*eth));
	if (!eth)
		return -MIXLB_DROP_FIB_OTHER;
	tagged = eth->h_proto == bpf_htons(ETH_P_8021Q) || eth->h_proto == bpf_htons(ETH_P_8021AD);
	__builtin_memcpy(eth->h_dest, fib.dmac, sizeof(eth->h_dest));
	__builtin_memcpy(eth->h_source, fib.smac, sizeof(eth->h_source));

	if (tagged || fib.ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	rc = bpf_redirect(fib.ifindex, 0);
	return rc == XDP_REDIRECT ? XDP_REDIRECT : -MIXLB_DROP_REDIRECT;
}
