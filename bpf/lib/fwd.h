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
 * Successful answers are cached per CPU and per node for MIXLB_FIB_CACHE_NS
 * (mixlb_fib_cache): a forwarded packet then costs an array read instead of
 * a FIB walk, and the egress MTU is still enforced from the cached answer.
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

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct mixlb_fib_cache);
	__uint(max_entries, MIXLB_DEFAULT_MAX_NODES);
} mixlb_fib_cache SEC(".maps");

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

/* The cached next hop for `node_id` in `slot`, if it is still good. */
static __always_inline struct mixlb_fib_cache *fwd_cached(struct xdp_md *ctx, __u32 slot,
							  __u32 node_id, __u64 now)
{
	struct mixlb_fib_cache *c;

	if (slot >= mixlb_max_nodes)
		return NULL;
	c = bpf_map_lookup_elem(&mixlb_fib_cache, &slot);
	if (!c || c->node_id != node_id || c->ingress_ifindex != ctx->ingress_ifindex ||
	    now >= c->expires_ns)
		return NULL;
	return c;
}

/*
 * A MAC copied as three 16-bit words. Every MAC this file copies starts on
 * an even offset (the Ethernet header, struct bpf_fib_lookup, struct
 * mixlb_fib_cache), and byte-wise copies cost a load and a store per byte.
 */
static __always_inline void fwd_copy_mac(__u8 *to, const __u8 *from)
{
	__u16 *t = (__u16 *)to;
	const __u16 *f = (const __u16 *)from;

	t[0] = f[0];
	t[1] = f[1];
	t[2] = f[2];
}

_Static_assert(__builtin_offsetof(struct mixlb_fib_cache, dmac) % 2 == 0 &&
		       __builtin_offsetof(struct mixlb_fib_cache, smac) % 2 == 0 &&
		       __builtin_offsetof(struct bpf_fib_lookup, dmac) % 2 == 0 &&
		       __builtin_offsetof(struct bpf_fib_lookup, smac) % 2 == 0,
	       "fwd_copy_mac copies 16-bit words");

static __always_inline int fwd_rewrite(struct xdp_md *ctx, const __u8 *dmac, const __u8 *smac,
				       __u32 egress)
{
	struct ethhdr *eth = lb_ptr(ctx, 0, sizeof(*eth));
	bool tagged;
	long rc;

	if (!eth)
		return -MIXLB_DROP_FIB_OTHER;
	tagged = eth->h_proto == bpf_htons(ETH_P_8021Q) || eth->h_proto == bpf_htons(ETH_P_8021AD);
	fwd_copy_mac(eth->h_dest, dmac);
	fwd_copy_mac(eth->h_source, smac);
	if (tagged || egress == ctx->ingress_ifindex)
		return XDP_TX;
	rc = bpf_redirect(egress, 0);
	return rc == XDP_REDIRECT ? XDP_REDIRECT : -MIXLB_DROP_REDIRECT;
}

/*
 * Returns XDP_TX or XDP_REDIRECT, or a negative drop reason. `slot_hint` is
 * where the node's cache entry probably is (from the connection table);
 * *slot gets the node's real column in the per-(VIP, node) counters.
 */
static __always_inline int fwd_l2_dsr(struct xdp_md *ctx, const struct lb_packet *pkt,
				      __u32 node_id, __u32 slot_hint, __u32 *slot)
{
	struct bpf_fib_lookup fib = {};
	struct mixlb_fib_cache *c;
	struct mixlb_node *node;
	__u64 now = pkt->now_ns;
	long rc;

	c = fwd_cached(ctx, slot_hint, node_id, now);
	if (c) {
		*slot = slot_hint;
		goto cached;
	}
	node = bpf_map_lookup_elem(&mixlb_nodes, &node_id);
	if (!node)
		return -MIXLB_DROP_UNKNOWN_NODE;
	*slot = node->stats_slot;
	c = fwd_cached(ctx, *slot, node_id, now);
	if (c)
		goto cached;

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

	if (!mixlb_dry_run && *slot < mixlb_max_nodes) {
		c = bpf_map_lookup_elem(&mixlb_fib_cache, slot);
		if (c) {
			c->expires_ns = now + MIXLB_FIB_CACHE_NS;
			c->node_id = node_id;
			c->ifindex = fib.ifindex;
			c->ingress_ifindex = ctx->ingress_ifindex;
			c->mtu = fib.mtu_result;
			fwd_copy_mac(c->dmac, fib.dmac);
			fwd_copy_mac(c->smac, fib.smac);
		}
	}
	return fwd_rewrite(ctx, fib.dmac, fib.smac, fib.ifindex);

cached:
	if (pkt->l3_len > c->mtu)
		return -MIXLB_DROP_FIB_FRAG_NEEDED;
	return fwd_rewrite(ctx, c->dmac, c->smac, c->ifindex);
}
