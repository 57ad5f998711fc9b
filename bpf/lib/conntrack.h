/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The connection table: 5-tuple -> (serving node, VIP), in an LRU hash so a
 * full table evicts the coldest flow instead of refusing new ones. The LRU
 * lists are per CPU (BPF_F_NO_COMMON_LRU): an insert takes no lock shared
 * with the other CPUs, which is most of the cost of a new flow; eviction then
 * picks the coldest flow of the inserting CPU's list. A flow
 * found here keeps its node whatever the Maglev tables say since; that is
 * what keeps established connections in place when membership or weights
 * change. It is consulted before the VIP map: an established packet needs
 * one hash lookup, and the entry says which VIP it belongs to.
 *
 * Live flows first: a new flow's decision goes into a table of its own,
 * the half-open table (a TCP SYN, a UDP flow's first datagram), and moves to
 * the connection table with the flow's second packet (the handshake's ACK,
 * the second datagram). A SYN flood or a port scan then churns only the
 * half-open table; it cannot push the idle established flows out of the
 * connection table.
 *
 * The half-open table is direct-mapped: an array of
 * datapath.half_open_entries slots (a power of two), the flow's slot picked
 * by the flow hash Maglev already computed. Recording a decision is one
 * array lookup and a few stores -- no hash of the key, no lock, no LRU
 * list, which is what an LRU insert costs (docs/benchmarks.md). The price:
 * a new flow whose slot is taken by a newer one loses its decision; its
 * second packet then misses both tables and gets the Maglev answer, which
 * is the same node unless the tables changed within the handshake. The
 * LRU it replaces lost decisions the same way, oldest first, once full.
 *
 * Policy (docs/architecture.md, tested in test/bpf/):
 *   - TCP: a SYN's decision goes into the half-open table; the first
 *     packet after it, found there, moves it to the connection table with
 *     the node the SYN got, whatever the tables say since -- unless that
 *     packet is a RST or FIN, which ends the half-open flow instead. A SYN is never
 *     looked up: it starts a new connection, which the current tables
 *     place. The price, as in Katran: a SYN retransmitted across a table
 *     change may land on another node than the first copy.
 *   - A client reusing the 5-tuple of an earlier connection must not follow
 *     that connection's node (since drained, failed or gone). Close tracking
 *     and invalidation delete a closed connection's entry within
 *     milliseconds; while one is still there and shows the client's FIN or
 *     RST (ct_ended), the packet after the new SYN looks in the half-open
 *     table too, and the new decision replaces the old entry. An entry
 *     that saw neither (a client that crashed and came back with the same
 *     port, before the sweeper's established timeout) still wins: the
 *     price of a SYN path with no connection-table lookup. A non-SYN packet that misses both (a flow
 *     the router moved here mid-stream) takes the Maglev answer, which every
 *     node shares, and is inserted too, marked MIXLB_CT_FROM_NON_SYN -- unless
 *     it carries FIN or RST: such a packet ends a connection (often one whose
 *     entry an invalidation has just deleted: a retransmitted FIN, a late
 *     RST), so it is forwarded by the same Maglev answer but leaves no entry
 *     behind for the sweeper to find. And a mid-stream packet of a flow
 *     served here is pinned only while the local stack holds a connection
 *     for it (ct_local_alive): an ACK or a window update that arrives after
 *     the close deleted the entry finds a timewait socket or the listener.
 *   - UDP: the first datagram goes into the half-open table, the second
 *     moves it to the connection table (a one-datagram exchange, a DNS
 *     query, never takes a place there).
 *   - A hit ORs in the TCP flags seen and refreshes last_seen_ns (coarse
 *     clock, at most every MIXLB_CT_TOUCH_NS, so hits stay read-mostly).
 *   - A peer's SYN (a flow the peer balanced to this node) records the peer
 *     in mixlb_origins, for the targeted invalidation when it closes.
 *   - An ICMP error about a flow reads the table but never creates or
 *     refreshes an entry, and is not counted as a hit or miss: it is not
 *     traffic of the flow.
 */
#pragma once

#include "flow_hash.h"
#include "shared_maps.h" /* mixlb_ct */
#include "maglev.h"
#include "stats.h"

/* Half-open flows: the decision of a SYN or a first datagram (see above). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct mixlb_half_open);
	__uint(max_entries, MIXLB_DEFAULT_CT_ENTRIES / 4);
} mixlb_half_open SEC(".maps");

/*
 * The connection-table cache: per CPU, direct-mapped (mixlb_ct_cache_slot), a
 * copy of the entries this CPU found in the connection table, each good
 * within the tick it was copied in. The connection table is a hash map whose
 * lookup is a kernel call (a hash, a bucket walk and a compare, each a
 * function with its own return, which hosts with return-stack mitigations
 * make expensive); the cache is an inlined array read and a compare, its
 * index a short multiplicative hash computed in the program. A busy flow's
 * packets then reach the table once per tick and CPU, and that packet
 * refreshes last_seen_ns and the flags there as before.
 *
 * A peer's flow delivered here gets a copy too (ct_cache_put_peer, below).
 *
 * What a copy may miss, it misses for at most one tick (1-10 ms):
 *   - a packet with a TCP flag the copy has not seen (a FIN, a RST) skips
 *     the cache, so the flags always reach the table; the entry it then
 *     finds ended is taken out of the cache;
 *   - an entry deleted or changed by anyone else (close tracking,
 *     invalidation, the sweeper, the sidecar dropping a node or a VIP, or
 *     this program on another CPU) is still used by this CPU's copy until
 *     the tick moves. The sidecar's own deletes also empty the slot
 *     (DatapathMaps), so that lag is left only to a packet that raced them;
 *   - a peer forgotten, or a VIP removed, while a peer copy of one of its
 *     flows lives: that flow's frames from the peer's MAC are still
 *     delivered here and counted as the peer's, as they were a moment
 *     before.
 * A dry-run instance does not use the cache.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct mixlb_ct_cached);
	__uint(max_entries, MIXLB_CT_CACHE_SLOTS);
} mixlb_ct_cache SEC(".maps");

static __always_inline bool ct_same_flow(const struct mixlb_flow_key *a, const struct mixlb_flow_key *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;

	return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3]) | (x[4] ^ y[4])) == 0;
}

static __always_inline struct mixlb_ct_cached *ct_cache_slot(__u32 idx)
{
	return bpf_map_lookup_elem(&mixlb_ct_cache, &idx);
}

/* This CPU's slot for the packet's flow, if it holds a copy of it from this tick. */
static __always_inline struct mixlb_ct_cached *ct_cache_hit(const struct lb_packet *pkt, __u32 idx)
{
	struct mixlb_ct_cached *slot;

	if (mixlb_dry_run || pkt->kind != LB_KIND_FLOW)
		return NULL;
	slot = ct_cache_slot(idx);
	if (!slot || slot->jiffies != pkt->now_jiffies || !ct_same_flow(&slot->flow, &pkt->flow))
		return NULL;
	return slot;
}

/* The connection-table entry a hit holds, unless the packet adds a flag to it. */
static __always_inline struct mixlb_ct_value *ct_cached(const struct lb_packet *pkt,
							struct mixlb_ct_cached *hit)
{
	if (!hit || (hit->value.flags & MIXLB_CT_PEER_COPY) || (pkt->tcp_flags & ~hit->value.flags))
		return NULL;
	return &hit->value;
}

/* After a connection-table hit: a copy for the rest of the tick, or none for an ended entry. */
static __always_inline void ct_cache_put(const struct lb_packet *pkt, __u32 idx,
					 const struct mixlb_ct_value *entry)
{
	struct mixlb_ct_cached *slot;

	if (mixlb_dry_run || pkt->kind != LB_KIND_FLOW)
		return;
	slot = ct_cache_slot(idx);
	if (!slot)
		return;
	if (entry->flags & (MIXLB_CT_SEEN_FIN | MIXLB_CT_SEEN_RST)) {
		if (ct_same_flow(&slot->flow, &pkt->flow))
			slot->flow.family = 0;
		return;
	}
	slot->flow = pkt->flow;
	slot->value = *entry;
	slot->jiffies = pkt->now_jiffies;
}

/*
 * After a peer's frame was delivered here: a copy that lets the flow's next
 * frames this tick skip the two hash lookups that recognised it (the peer's
 * MAC, the VIP). Such a copy has no table entry behind it (a peer's flows
 * have theirs on the peer); it records the VIP and the peer, and is used
 * only for a frame whose source MAC passes the peer filter, so the router's
 * frames of the flow are never taken for a peer's. Any TCP flag may use it:
 * a peer's frame updates no table here.
 */
static __always_inline void ct_cache_put_peer(const struct lb_packet *pkt, __u32 idx, __u16 vip_id,
					      __u32 peer)
{
	struct mixlb_ct_cached *slot;

	if (mixlb_dry_run || pkt->kind != LB_KIND_FLOW || pkt->is_syn)
		return;
	slot = ct_cache_slot(idx);
	if (!slot)
		return;
	slot->flow = pkt->flow;
	__builtin_memset(&slot->value, 0, sizeof(slot->value));
	slot->value.node_id = peer;
	slot->value.vip_id = vip_id;
	slot->value.flags = MIXLB_CT_PEER_COPY;
	slot->jiffies = pkt->now_jiffies;
}

static __always_inline struct mixlb_ct_value *ct_lookup(const struct lb_packet *pkt)
{
	return bpf_map_lookup_elem(&mixlb_ct, &pkt->flow);
}

/* The entry's connection has ended: a FIN or RST of its client went by. */
static __always_inline bool ct_ended(const struct mixlb_ct_value *entry)
{
	return entry->flags & (MIXLB_CT_SEEN_FIN | MIXLB_CT_SEEN_RST);
}

static __always_inline void ct_touch(struct mixlb_ct_value *entry, const struct lb_packet *pkt)
{
	__u64 now;

	if (mixlb_dry_run || pkt->kind != LB_KIND_FLOW)
		return;
	now = pkt->now_ns;
	if (now - entry->last_seen_ns > MIXLB_CT_TOUCH_NS)
		entry->last_seen_ns = now;
	if ((entry->flags & pkt->tcp_flags) != pkt->tcp_flags)
		entry->flags |= pkt->tcp_flags;
}

/* The entry of a flow of `vip_id` served by `node`, made now. */
static __always_inline struct mixlb_ct_value ct_fresh(const struct lb_packet *pkt, __u32 vip_id, __u32 node,
						      __u32 slot)
{
	struct mixlb_ct_value fresh = {};

	fresh.last_seen_ns = pkt->now_ns;
	fresh.created_s = (__u32)(fresh.last_seen_ns / 1000000000ull);
	fresh.node_id = node;
	fresh.vip_id = vip_id;
	fresh.stats_slot = slot;
	fresh.flags = pkt->tcp_flags;
	return fresh;
}

/* Records a new flow of `vip_id` served by `node`. */
static __always_inline void ct_insert(const struct lb_packet *pkt, __u32 vip_id, __u32 node,
				      __u32 slot)
{
	struct mixlb_ct_value fresh;

	if (mixlb_dry_run || pkt->kind != LB_KIND_FLOW)
		return;
	if (!pkt->is_syn && (pkt->tcp_flags & (MIXLB_CT_SEEN_FIN | MIXLB_CT_SEEN_RST)))
		return;
	fresh = ct_fresh(pkt, vip_id, node, slot);
	if (pkt->flow.proto == LB_IPPROTO_TCP && !pkt->is_syn) {
		fresh.flags |= MIXLB_CT_FROM_NON_SYN;
		stats_count(MIXLB_CNT_CT_NON_SYN_MISS);
	}
	if (bpf_map_update_elem(&mixlb_ct, &pkt->flow, &fresh, BPF_ANY) == 0)
		stats_count(MIXLB_CNT_CT_INSERT);
	else
		stats_count(MIXLB_CNT_CT_INSERT_FAIL);
}

/* A peer balanced this new flow here: remember which (shared_maps.h). */
static __always_inline void ct_record_origin(const struct lb_packet *pkt, __u32 peer)
{
	if (mixlb_dry_run || pkt->kind != LB_KIND_FLOW)
		return;
	bpf_map_update_elem(&mixlb_origins, &pkt->flow, &peer, BPF_ANY);
}

/*
 * A TCP packet that missed and is served here, not a SYN: does the local
 * stack still hold its connection? Only then is it worth an entry. A lookup
 * that finds no connection falls back to the listener; a closed one leaves a
 * timewait socket.
 */
static __always_inline bool ct_local_alive(struct xdp_md *ctx, const struct lb_packet *pkt)
{
	struct bpf_sock_tuple tuple = {};
	struct bpf_sock *sk;
	__u32 size;
	bool alive;

	if (pkt->flow.proto != LB_IPPROTO_TCP || pkt->is_syn || pkt->kind != LB_KIND_FLOW)
		return true;
	if (pkt->flow.family == MIXLB_AF_INET) {
		tuple.ipv4.saddr = pkt->flow.src[0];
		tuple.ipv4.daddr = pkt->flow.dst[0];
		tuple.ipv4.sport = pkt->flow.sport;
		tuple.ipv4.dport = pkt->flow.dport;
		size = sizeof(tuple.ipv4);
	} else {
		__builtin_memcpy(tuple.ipv6.saddr, pkt->flow.src, sizeof(tuple.ipv6.saddr));
		__builtin_memcpy(tuple.ipv6.daddr, pkt->flow.dst, sizeof(tuple.ipv6.daddr));
		tuple.ipv6.sport = pkt->flow.sport;
		tuple.ipv6.dport = pkt->flow.dport;
		size = sizeof(tuple.ipv6);
	}
	sk = bpf_skc_lookup_tcp(ctx, &tuple, size, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return false;
	alive = sk->state != BPF_TCP_LISTEN && sk->state != BPF_TCP_TIME_WAIT &&
		sk->state != BPF_TCP_CLOSE;
	bpf_sk_release(sk);
	return alive;
}

static __always_inline struct mixlb_half_open *ct_half_open_slot(__u32 flow_hash)
{
	__u32 idx = flow_hash & mixlb_half_open_mask;

	return bpf_map_lookup_elem(&mixlb_half_open, &idx);
}

/*
 * A half-open flow's decision, for its second packet (not for an ICMP
 * error), copied into *decision: the slot may be rewritten by another CPU
 * at any time, so the copy is what is checked and used.
 */
static __always_inline bool ct_half_open(const struct lb_packet *pkt, __u32 flow_hash,
					 struct mixlb_ct_value *decision)
{
	struct mixlb_half_open *slot;

	if (pkt->kind != LB_KIND_FLOW || pkt->is_syn)
		return false;
	slot = ct_half_open_slot(flow_hash);
	if (!slot || !ct_same_flow(&slot->flow, &pkt->flow))
		return false;
	*decision = slot->decision;
	return slot->check == mixlb_half_open_check(flow_hash, decision);
}

/* A new flow's decision: into its half-open slot. */
static __always_inline void ct_insert_new(const struct lb_packet *pkt, __u32 flow_hash, __u32 vip_id,
					  __u32 node, __u32 slot_idx)
{
	struct mixlb_ct_value fresh;
	struct mixlb_half_open *slot;

	if (mixlb_dry_run || pkt->kind != LB_KIND_FLOW)
		return;
	slot = ct_half_open_slot(flow_hash);
	if (!slot)
		return;
	fresh = ct_fresh(pkt, vip_id, node, slot_idx);
	slot->flow = pkt->flow;
	slot->decision = fresh;
	slot->check = mixlb_half_open_check(flow_hash, &fresh);
}

/* Empties the flow's half-open slot, if it still holds the flow. */
static __always_inline void ct_half_open_clear(const struct lb_packet *pkt, __u32 flow_hash)
{
	struct mixlb_half_open *slot = ct_half_open_slot(flow_hash);

	if (slot && ct_same_flow(&slot->flow, &pkt->flow))
		slot->flow.family = 0;
}

/*
 * The second packet of a half-open flow: its decision enters the connection
 * table. A RST or FIN there (the client's answer to a SYN-ACK it did not
 * expect: a scan, a flood with its address) ends the flow instead: it is
 * forwarded by the decision, which then goes.
 */
static __always_inline void ct_promote(const struct lb_packet *pkt, __u32 flow_hash,
				       const struct mixlb_ct_value *half)
{
	struct mixlb_ct_value entry;

	if (mixlb_dry_run)
		return;
	if (!(pkt->tcp_flags & (MIXLB_CT_SEEN_FIN | MIXLB_CT_SEEN_RST))) {
		entry = *half;
		entry.last_seen_ns = pkt->now_ns;
		entry.flags |= pkt->tcp_flags;
		if (bpf_map_update_elem(&mixlb_ct, &pkt->flow, &entry, BPF_ANY) == 0)
			stats_count(MIXLB_CNT_CT_INSERT);
		else
			stats_count(MIXLB_CNT_CT_INSERT_FAIL);
	}
	ct_half_open_clear(pkt, flow_hash);
}
