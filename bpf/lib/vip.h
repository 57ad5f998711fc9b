/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The VIP map: (address, port, protocol) -> the VIP's id and which half of
 * its double-buffered Maglev table is live. No preallocation, so a replaced
 * value is freed only after an RCU grace period: a packet that read the old
 * value keeps reading valid memory while the sidecar flips active_half.
 */
#pragma once

#include "parse.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct mixlb_vip_key);
	__type(value, struct mixlb_vip_value);
	__uint(max_entries, 16);
} mixlb_vips SEC(".maps");

static __always_inline struct mixlb_vip_value *vip_lookup(const struct lb_packet *pkt)
{
	struct mixlb_vip_key key;

	__builtin_memset(&key, 0, sizeof(key));
	__builtin_memcpy(key.addr, pkt->flow.dst, sizeof(key.addr));
	key.port = pkt->flow.dport;
	key.proto = pkt->flow.proto;
	key.family = pkt->flow.family;
	return bpf_map_lookup_elem(&mixlb_vips, &key);
}
