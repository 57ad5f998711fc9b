/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The maps both programs use: the XDP program owns them (vip.h and
 * conntrack.h say what they hold), the close-tracking program gets the same
 * maps by fd before its load (bpf_map__reuse_fd), which needs the same
 * definitions: one place for them.
 */
#pragma once

#include "mixlb_abi.h"

/* (address, port, protocol) -> the VIP's id and live table half (vip.h). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct mixlb_vip_key);
	__type(value, struct mixlb_vip_value);
	__uint(max_entries, MIXLB_DEFAULT_MAX_VIPS);
} mixlb_vips SEC(".maps");

/* The connection table: 5-tuple -> (serving node, VIP) (conntrack.h). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct mixlb_flow_key);
	__type(value, struct mixlb_ct_value);
	__uint(max_entries, MIXLB_DEFAULT_CT_ENTRIES);
} mixlb_ct SEC(".maps");

/*
 * Which peer balanced a TCP flow that this node serves: 5-tuple -> the
 * peer's node id. The XDP program records it from a peer's SYN (the frame's
 * source MAC names the peer); close tracking reads and deletes it when the
 * connection closes, so a targeted invalidation goes to that peer only. An
 * LRU of the connection table's size: a lost record costs only a fallback.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct mixlb_flow_key);
	__type(value, __u32);
	__uint(max_entries, MIXLB_DEFAULT_CT_ENTRIES);
} mixlb_origins SEC(".maps");
