/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The VIP map: (address, port, protocol) -> the VIP's id and which half of
 * its double-buffered Maglev table is live. Port 0 in a key means every port;
 * it is looked up only when the exact port misses and the settings say such
 * a VIP exists. The address filter in front (vip_maybe) turns traffic that
 * is not ours away before any hash lookup.
 *
 * No preallocation, so a replaced value is freed only after an RCU grace
 * period: a packet that read the old value keeps reading valid memory while
 * the sidecar flips active_half.
 */
#pragma once

#include "filter.h"
#include "parse.h"
#include "shared_maps.h" /* mixlb_vips */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct mixlb_settings);
	__uint(max_entries, 1);
} mixlb_settings SEC(".maps");

/* False proves the destination is no VIP's address. */
static __always_inline bool vip_maybe(const struct lb_packet *pkt)
{
	return filter_maybe(&mixlb_vip_filter, pkt->flow.dst);
}

static __always_inline struct mixlb_vip_value *vip_lookup(const struct lb_packet *pkt)
{
	struct mixlb_settings *settings;
	struct mixlb_vip_value *vip;
	struct mixlb_vip_key key;
	__u32 zero = 0;

	__builtin_memset(&key, 0, sizeof(key));
	__builtin_memcpy(key.addr, pkt->flow.dst, sizeof(key.addr));
	key.port = pkt->flow.dport;
	key.proto = pkt->flow.proto;
	key.family = pkt->flow.family;
	vip = bpf_map_lookup_elem(&mixlb_vips, &key);
	if (vip)
		return vip;
	settings = bpf_map_lookup_elem(&mixlb_settings, &zero);
	if (!settings || !settings->any_port_vips)
		return NULL;
	key.port = 0;
	return bpf_map_lookup_elem(&mixlb_vips, &key);
}
