/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Peers and their MACs. A frame whose source MAC is a peer's was balanced by
 * that peer already: it is delivered here, never balanced again, so two
 * nodes that briefly disagree on membership cannot bounce a packet.
 */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "mixlb_abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct mixlb_node);
	__uint(max_entries, 1024);
} mixlb_nodes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct mixlb_mac);
	__type(value, __u32);
	__uint(max_entries, 1024);
} mixlb_peer_macs SEC(".maps");

static __always_inline bool peer_sent(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = (void *)(long)ctx->data;
	struct mixlb_mac key = {};

	if ((void *)(eth + 1) > data_end)
		return false;
	__builtin_memcpy(key.addr, eth->h_source, sizeof(key.addr));
	return bpf_map_lookup_elem(&mixlb_peer_macs, &key) != NULL;
}
