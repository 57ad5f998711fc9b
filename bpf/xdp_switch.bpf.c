// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The test topology's switch, forwarding in XDP (integration/lib.sh,
 * MIXLB_SWITCH=xdp; what `./dev bench e2e` runs on).
 *
 * A hardware switch forwards a frame without the hosts' CPUs. The bridge in
 * the switch namespace does not: each frame becomes an skb at the port,
 * crosses the bridge and is segmented and aggregated again around the next
 * veth, on the same two CPUs as the nodes, wrk and iperf3. A frame that
 * mixlb forwards to a peer crosses the switch twice, so the bridge charged
 * the forwarded path for a second trip that real hardware makes for free.
 *
 * This program runs on every switch port. A unicast frame whose destination
 * MAC is in `switch_fdb` (filled by the topology from the MACs of the
 * ports' peers; never learned) is redirected to that port as an XDP frame.
 * Everything else passes to the bridge, which stays in place: broadcast and
 * multicast (ARP, IPv6 neighbour discovery, multicast invalidation),
 * unknown destinations, and a frame addressed back to the port it came in
 * on. The redirect needs an XDP program on the peer of the port it leaves
 * by (mixlb's own, or xdp_pass on the router's end).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define ETH_HLEN 14

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u64);       /* the destination MAC in its first 6 bytes, then 0 */
	__type(value, __u32);     /* the switch port's ifindex */
	__uint(max_entries, 256);
} switch_fdb SEC(".maps");

SEC("xdp")
int xdp_switch(struct xdp_md *ctx)
{
	const __u8 *data = (const __u8 *)(long)ctx->data;
	const __u8 *end = (const __u8 *)(long)ctx->data_end;
	__u64 mac = 0;
	__u32 *port;

	if (data + ETH_HLEN > end)
		return XDP_PASS;
	if (data[0] & 1)                  /* the group bit: broadcast or multicast */
		return XDP_PASS;
	__builtin_memcpy(&mac, data, 6);
	port = bpf_map_lookup_elem(&switch_fdb, &mac);
	if (!port || *port == ctx->ingress_ifindex)
		return XDP_PASS;
	return bpf_redirect(*port, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
