// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Close tracking: when a local TCP socket of a VIP goes to TCP_CLOSE, its
 * connection-table entry is deleted here and its key goes to the sidecar
 * through a ring buffer (for the other nodes' entries: invalidation).
 *
 * What the kernel shows at CLOSE (probed on 6.18, wip notes): the server
 * socket closes from FIN_WAIT2 when it closed first (its TIME_WAIT lives in
 * a separate timewait socket) and from LAST_ACK when the client did, so one
 * hook covers both orders; skc_num is 0 by then and inet_sport holds the
 * local port; the listener's own close (from LISTEN) and a local client's
 * (from SYN_SENT) are not connections of a VIP and are skipped. Only sockets
 * whose local address and port are a VIP of the VIP map count.
 *
 * The event names the peer that balanced the flow here, if one did
 * (mixlb_origins, recorded by the XDP program from the peer's SYN).
 *
 * mixlb_ct, mixlb_vips and mixlb_origins are the XDP program's maps, shared by fd
 * (bpf_map__reuse_fd) before the load (lib/shared_maps.h).
 */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "lib/shared_maps.h"

/*
 * The tracepoint fires for every socket of the host; only those of the
 * sidecar's own network namespace (its inode number, set before the load)
 * are this node's. Several nodes on one host (containers, the tests) would
 * otherwise delete each other's entries.
 */
const volatile __u32 mixlb_netns_ino = 0;

/* Keeps the event's type in the object's BTF, for the ABI test. */
const volatile struct mixlb_close_event mixlb_btf_close_event = {};
const volatile enum mixlb_close_event_flag mixlb_btf_close_event_flag = MIXLB_CLOSE_EV_DELETED;

#define TCP_SYN_SENT_STATE 2
#define TCP_CLOSE_STATE 7
#define TCP_LISTEN_STATE 10
#define AF_INET_FAMILY 2
#define AF_INET6_FAMILY 10

/* Batched by the consumer; a full ring drops the event and counts it. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} mixlb_closes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, MIXLB_CLOSE_COUNTER_MAX);
} mixlb_close_stats SEC(".maps");

static __always_inline void count(__u32 which)
{
	__u64 *n = bpf_map_lookup_elem(&mixlb_close_stats, &which);

	if (n)
		*n += 1;
}

static __always_inline int is_vip(const struct mixlb_flow_key *key)
{
	struct mixlb_vip_key vip = {};

	__builtin_memcpy(vip.addr, key->dst, sizeof(vip.addr));
	vip.port = key->dport;
	vip.proto = key->proto;
	vip.family = key->family;
	if (bpf_map_lookup_elem(&mixlb_vips, &vip))
		return 1;
	vip.port = 0; /* a VIP of every port */
	return bpf_map_lookup_elem(&mixlb_vips, &vip) != 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(mixlb_close, const struct sock *sk, const int oldstate, const int newstate)
{
	struct mixlb_close_event *event;
	struct mixlb_flow_key key = {};
	__u32 origin = MIXLB_NODE_NONE, flags = 0, *peer;
	struct tcp_sock *tp;
	__u16 family;

	if (newstate != TCP_CLOSE_STATE || oldstate == TCP_LISTEN_STATE ||
	    oldstate == TCP_SYN_SENT_STATE || sk->sk_protocol != IPPROTO_TCP)
		return 0;
	if (sk->__sk_common.skc_net.net->ns.inum != mixlb_netns_ino)
		return 0;
	tp = bpf_skc_to_tcp_sock((void *)sk);
	if (!tp)
		return 0;
	family = sk->__sk_common.skc_family;
	if (family == AF_INET_FAMILY) {
		key.src[0] = sk->__sk_common.skc_daddr;
		key.dst[0] = sk->__sk_common.skc_rcv_saddr;
		key.family = MIXLB_AF_INET;
	} else if (family == AF_INET6_FAMILY) {
		__builtin_memcpy(key.src, &sk->__sk_common.skc_v6_daddr, sizeof(key.src));
		__builtin_memcpy(key.dst, &sk->__sk_common.skc_v6_rcv_saddr, sizeof(key.dst));
		key.family = MIXLB_AF_INET6;
	} else {
		return 0;
	}
	key.sport = sk->__sk_common.skc_dport;
	key.dport = tp->inet_conn.icsk_inet.inet_sport;
	key.proto = IPPROTO_TCP;
	if (!is_vip(&key))
		return 0;
	count(MIXLB_CLOSE_SEEN);
	if (bpf_map_delete_elem(&mixlb_ct, &key) == 0) {
		count(MIXLB_CLOSE_DELETED);
		flags |= MIXLB_CLOSE_EV_DELETED;
	}
	peer = bpf_map_lookup_elem(&mixlb_origins, &key);
	if (peer) {
		origin = *peer;
		bpf_map_delete_elem(&mixlb_origins, &key);
	}
	event = bpf_ringbuf_reserve(&mixlb_closes, sizeof(*event), 0);
	if (!event) {
		count(MIXLB_CLOSE_RING_FULL);
		return 0;
	}
	event->flow = key;
	event->at_ns = bpf_ktime_get_ns();
	event->origin_node = origin;
	event->flags = flags;
	bpf_ringbuf_submit(event, 0);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
