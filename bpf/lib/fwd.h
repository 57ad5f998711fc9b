/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Forwarding to a peer by L2 direct server return: the IP packet is left as
 * it is (destination still the VIP) and only the Ethernet addresses change.
 * Both MACs come from bpf_fib_lookup towards the peer's node address, never
 * from configuration. A failed lookup, NO_NEIGH included, is a drop with its
 * own reason: the packet was not ours to deliver locally.
 */
#pragma once

#include "parse.h"
#include "peer.h"

#define AF_INET_ 2

static __always_inline int fib_drop_reason(long rc)
{
	switch (rc) {
	case BPF_FIB_LKUP_RET_NO_NEIGH:
		return -MIXLB_DROP_FIB_NO_NEIGH;
	case BPF_FIB_LKUP_RET_FWD_DISABLED:
		return -MIXLB_DROP_FIB_FWD_DISABLED;
	default:
		return -MIXLB_DROP_FIB_OTHER;
	}
}

/* Returns XDP_TX or XDP_REDIRECT, or a negative drop reason. */
static __always_inline int fwd_l2_dsr(struct xdp_md *ctx, const struct lb_packet *pkt, __u32 node_id)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = (void *)(long)ctx->data;
	struct bpf_fib_lookup fib = {};
	struct mixlb_node *node;
	long rc;

	node = bpf_map_lookup_elem(&mixlb_nodes, &node_id);
	if (!node)
		return -MIXLB_DROP_UNKNOWN_NODE;

	fib.family = AF_INET_;
	fib.ipv4_dst = node->addr[0];
	fib.tot_len = pkt->ip_tot_len;
	fib.ifindex = ctx->ingress_ifindex;
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return fib_drop_reason(rc);

	if ((void *)(eth + 1) > data_end)
		return -MIXLB_DROP_FIB_OTHER;
	__builtin_memcpy(eth->h_dest, fib.dmac, sizeof(eth->h_dest));
	__builtin_memcpy(eth->h_source, fib.smac, sizeof(eth->h_source));

	if (fib.ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	rc = bpf_redirect(fib.ifindex, 0);
	return rc == XDP_REDIRECT ? XDP_REDIRECT : -MIXLB_DROP_REDIRECT;
}
