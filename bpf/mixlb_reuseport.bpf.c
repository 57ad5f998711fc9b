// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The reuseport selector: which of the app's sockets gets each new flow.
 *
 * Attached to every managed SO_REUSEPORT group (a VIP port's listeners, TCP
 * or UDP), as BPF_SK_REUSEPORT_SELECT_OR_MIGRATE, so the kernel runs it for
 *   - every new flow (a SYN, a UDP datagram): the service's active
 *     generation gets it, by its policy (flow hash over a consistent table,
 *     or the receiving CPU's slot);
 *   - every request or queued child of a listener that closes: it moves to
 *     the active generation instead of being reset.
 * A UDP flow stays on the socket that received its first datagram until it
 * has been idle for the service's udp_idle_ns (mixlb_rp_flows), so a new
 * generation never receives a datagram of a flow it does not know.
 *
 * The sockarray holds sockets only; which generation is active, its table
 * and the cookies of the sockets are written by the sidecar
 * (sidecar/reuseport/), which owns the indices. When the chosen socket is
 * gone (its process died, the table is stale) the program selects nothing
 * and the kernel's own hash picks a live socket of the group: a flow is
 * never refused for want of a selection. That is counted (fallback).
 */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "mixlb_abi.h"

#define RP_IPPROTO_UDP 17
#define RP_ETH_P_IP 0x0800
#define RP_ETH_P_IPV6 0x86DD

struct {
	__uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, MIXLB_RP_MAX_SOCKETS);
} mixlb_rp_socks SEC(".maps");

/* The cookie of the socket at each index of mixlb_rp_socks (0: none). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, MIXLB_RP_MAX_SOCKETS);
} mixlb_rp_cookies SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct mixlb_rp_key);
	__type(value, struct mixlb_rp_service);
	__uint(max_entries, MIXLB_RP_MAX_SERVICES);
} mixlb_rp_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct mixlb_rp_table);
	__uint(max_entries, MIXLB_RP_MAX_TABLES);
} mixlb_rp_tables SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct mixlb_rp_flow_key);
	__type(value, struct mixlb_rp_flow);
	__uint(max_entries, MIXLB_RP_DEFAULT_FLOWS);
} mixlb_rp_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct mixlb_rp_stats);
	__uint(max_entries, MIXLB_RP_MAX_TABLES);
} mixlb_rp_stats SEC(".maps");

/* The service of the group `sk` belongs to, by how its sockets are bound. */
static __always_inline void rp_key_of(struct bpf_sock *sk, struct mixlb_rp_key *key)
{
	key->family = sk->family;
	key->proto = sk->protocol;
	key->port = sk->src_port;
	if (sk->family == MIXLB_AF_INET) {
		key->addr[0] = sk->src_ip4;
	} else {
		key->addr[0] = sk->src_ip6[0];
		key->addr[1] = sk->src_ip6[1];
		key->addr[2] = sk->src_ip6[2];
		key->addr[3] = sk->src_ip6[3];
	}
}

/* The remote end of a UDP datagram: its source address and port. */
static __always_inline int rp_udp_remote(struct sk_reuseport_md *md, struct mixlb_rp_flow_key *flow)
{
	struct udphdr *udp = md->data;

	if ((void *)(udp + 1) > md->data_end)
		return -1;
	flow->remote_port = udp->source;
	if (md->eth_protocol == bpf_htons(RP_ETH_P_IP))
		return bpf_skb_load_bytes_relative(md, offsetof(struct iphdr, saddr), flow->remote, 4,
						   BPF_HDR_START_NET);
	if (md->eth_protocol == bpf_htons(RP_ETH_P_IPV6))
		return bpf_skb_load_bytes_relative(md, offsetof(struct ipv6hdr, saddr), flow->remote, 16,
						   BPF_HDR_START_NET);
	return -1;
}

static __always_inline __u32 rp_slot(const struct mixlb_rp_service *svc, __u32 hash)
{
	if (svc->policy == MIXLB_RP_POLICY_CPU)
		return bpf_get_smp_processor_id() % MIXLB_RP_TABLE_SLOTS;
	return hash % MIXLB_RP_TABLE_SLOTS;
}

/*
 * The socket in `slot` of a worker table. The slot comes out of a modulo the
 * verifier cannot bound, so it is checked again where clang cannot see that
 * it holds.
 */
static __always_inline __u32 rp_table_sock(const struct mixlb_rp_table *table, __u32 slot)
{
	asm volatile("" : "+r"(slot));
	if (slot >= MIXLB_RP_TABLE_SLOTS)
		return table->socks[0];
	return table->socks[slot];
}

/* Selects index `sock`; on failure the kernel's hash chooses (counted). */
static __always_inline bool rp_select(struct sk_reuseport_md *md, __u32 sock, struct mixlb_rp_stats *stats)
{
	if (bpf_sk_select_reuseport(md, &mixlb_rp_socks, &sock, 0) == 0)
		return true;
	if (stats)
		stats->fallback += 1;
	return false;
}

/* A UDP datagram of a flow already placed, on a socket that is still there. */
static __always_inline int rp_udp_sticky(struct sk_reuseport_md *md, struct mixlb_rp_flow_key *key,
					 const struct mixlb_rp_service *svc, __u64 now)
{
	struct mixlb_rp_flow *flow = bpf_map_lookup_elem(&mixlb_rp_flows, key);
	struct mixlb_rp_stats *stats;
	__u64 *cookie;
	__u32 sock, table;

	if (!flow || now - flow->last_seen_ns > svc->udp_idle_ns)
		return -1;
	sock = flow->sock;
	cookie = bpf_map_lookup_elem(&mixlb_rp_cookies, &sock);
	if (!cookie || *cookie != flow->cookie)
		return -1;
	if (bpf_sk_select_reuseport(md, &mixlb_rp_socks, &sock, 0) != 0)
		return -1;
	flow->last_seen_ns = now;
	table = flow->table;
	stats = bpf_map_lookup_elem(&mixlb_rp_stats, &table);
	if (stats)
		stats->sticky += 1;
	return 0;
}

SEC("sk_reuseport/migrate")
int mixlb_reuseport(struct sk_reuseport_md *md)
{
	struct mixlb_rp_flow_key flow = {};
	struct mixlb_rp_service *svc;
	struct mixlb_rp_table *table;
	struct mixlb_rp_stats *stats;
	struct bpf_sock *sk = md->sk;
	__u32 table_id, sock;
	__u64 *cookie, now;
	bool udp;

	if (!sk)
		return SK_PASS;
	rp_key_of(sk, &flow.service);
	svc = bpf_map_lookup_elem(&mixlb_rp_services, &flow.service);
	if (!svc)
		return SK_PASS;
	table_id = svc->table;
	table = bpf_map_lookup_elem(&mixlb_rp_tables, &table_id);
	if (!table)
		return SK_PASS;
	stats = bpf_map_lookup_elem(&mixlb_rp_stats, &table_id);

	if (md->migrating_sk) {
		sock = rp_table_sock(table, md->hash % MIXLB_RP_TABLE_SLOTS);
		if (rp_select(md, sock, stats) && stats)
			stats->migrated += 1;
		return SK_PASS;
	}

	udp = flow.service.proto == RP_IPPROTO_UDP;
	now = bpf_ktime_get_ns();
	if (udp && rp_udp_remote(md, &flow) == 0) {
		if (rp_udp_sticky(md, &flow, svc, now) == 0)
			return SK_PASS;
	} else {
		udp = false; /* not a datagram it can read: placed, not pinned */
	}

	sock = rp_table_sock(table, rp_slot(svc, md->hash));
	if (!rp_select(md, sock, stats))
		return SK_PASS;
	if (stats)
		stats->selected += 1;
	if (udp) {
		struct mixlb_rp_flow placed = {};

		cookie = bpf_map_lookup_elem(&mixlb_rp_cookies, &sock);
		placed.cookie = cookie ? *cookie : 0;
		placed.last_seen_ns = now;
		placed.sock = sock;
		placed.table = table_id;
		bpf_map_update_elem(&mixlb_rp_flows, &flow, &placed, BPF_ANY);
	}
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
