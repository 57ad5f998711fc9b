/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Peers and their MACs. A frame whose source MAC is a peer's was balanced by
 * that peer already: it is delivered here, never balanced again, so two
 * nodes that briefly disagree on membership cannot bounce a packet. The
 * filter answers "no" for the router's frames without a hash lookup.
 */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "filter.h"
#include "parse.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct mixlb_node);
	__uint(max_entries, MIXLB_DEFAULT_MAX_NODES);
} mixlb_nodes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct mixlb_mac);
	__type(value, __u32);
	__uint(max_entries, MIXLB_DEFAULT_MAX_NODES);
} mixlb_peer_macs SEC(".maps");

/* The frame's source MAC, as the peer map's key (the words past it zero). */
static __always_inline bool peer_source(struct xdp_md *ctx, __u32 *words)
{
	struct ethhdr *eth = lb_ptr(ctx, 0, sizeof(*eth));

	if (!eth)
		return false;
	__builtin_memcpy(words, eth->h_source, 6);
	return true;
}

/* false: no peer sent the frame (the filter's answer, one array read). */
static __always_inline bool peer_maybe(struct xdp_md *ctx)
{
	__u32 words[4] = {};

	return peer_source(ctx, words) && filter_maybe(&mixlb_peer_filter, words);
}

/* The node id of the peer that sent the frame, MIXLB_NODE_NONE if no peer did. */
static __always_inline __u32 peer_sent(struct xdp_md *ctx)
{
	__u32 words[4] = {};
	__u32 *node;

	if (!peer_source(ctx, words) || !filter_maybe(&mixlb_peer_filter, words))
		return MIXLB_NODE_NONE;
	node = bpf_map_lookup_elem(&mixlb_peer_macs, words);
	return node ? *node : MIXLB_NODE_NONE;
}
