/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The kernel/user ABI of mixlb: every map key and value, every constant and
 * every enum that the BPF programs and the C++ sidecar both touch. It is the
 * one definition of these types; both sides include this file, and the C++
 * side pins the sizes with static_asserts (sidecar/kernel/abi.h), so the two cannot
 * drift apart.
 *
 * Addresses are always 16 bytes: an IPv4 address sits in addr[0] (network
 * order) with the other three words zero, so one key layout serves both
 * families. Ports are kept in network byte order, exactly as they appear in
 * the packet, so the data path never swaps bytes on the hot path.
 */
#ifndef MIXLB_ABI_H
#define MIXLB_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Node id 0 is never a real node: an empty Maglev slot holds it. */
#define MIXLB_NODE_NONE 0u

/* Default size of a VIP's Maglev lookup table (a prime, as Maglev needs). */
#define MIXLB_DEFAULT_RING_SIZE 65537u

/*
 * Default table sizes: the maps' max_entries in the object, the sidecar's
 * configuration defaults and its loader's defaults all come from here. The
 * sidecar resizes the maps before load (datapath.max_vips, max_nodes,
 * conntrack_entries).
 */
#define MIXLB_DEFAULT_MAX_VIPS 16u
#define MIXLB_DEFAULT_MAX_NODES 1024u
#define MIXLB_DEFAULT_CT_ENTRIES 65536u

/* The VIP's table is double-buffered: two halves, one of them active. */
#define MIXLB_RING_HALVES 2u

/* Address families as stored in keys (same values as AF_INET/AF_INET6). */
#define MIXLB_AF_INET 2
#define MIXLB_AF_INET6 10

/*
 * Key of the VIP map: destination address, port and IP protocol. Port 0 means
 * "every port" of that address and protocol; an exact port entry wins over it.
 */
struct mixlb_vip_key {
	__u32 addr[4];
	__be16 port; /* network order; 0 = all ports */
	__u8 proto;  /* IPPROTO_TCP / IPPROTO_UDP */
	__u8 family; /* MIXLB_AF_INET / MIXLB_AF_INET6 */
};

/*
 * Value of the VIP map. vip_id indexes the stats and the Maglev table array;
 * active_half says which half of the double buffer packets read. The sidecar
 * writes a new table into the inactive half, then flips active_half with one
 * map update, so no packet ever sees a half-written table.
 */
struct mixlb_vip_value {
	__u32 vip_id;
	__u32 active_half;
	__u32 flags;
	__u32 reserved;
};

/* Connection-table key: the 5-tuple as it arrives (client -> VIP). */
struct mixlb_flow_key {
	__u32 src[4];
	__u32 dst[4];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;
	__u8 pad[2];
};

/* TCP flags seen on a flow, recorded in mixlb_ct_value.flags. */
enum mixlb_ct_flag {
	MIXLB_CT_SEEN_SYN = 1u << 0,
	MIXLB_CT_SEEN_FIN = 1u << 1,
	MIXLB_CT_SEEN_RST = 1u << 2,
	MIXLB_CT_FROM_NON_SYN = 1u << 3, /* created by a non-SYN packet */
	/* Only ever in a connection-table cache slot, never in the table: the
	 * copy records a flow whose frames a peer forwards here (bpf/lib/conntrack.h). */
	MIXLB_CT_PEER_COPY = 1u << 4,
};

/*
 * Connection-table value: which node serves the flow, for which VIP, when it
 * was created and when it was last seen. vip_id lets an established packet skip the VIP lookup;
 * stats_slot is a hint for the node's next-hop cache and counters (checked
 * against node_id before use, so a stale hint costs only a node lookup).
 */
struct mixlb_ct_value {
	__u64 last_seen_ns; /* bpf_ktime_get_coarse_ns() of a recent packet */
	__u32 node_id;
	__u16 vip_id;
	__u16 stats_slot;
	__u32 flags; /* enum mixlb_ct_flag */
	__u32 created_s; /* bpf_ktime_get_coarse_ns() / 1e9 at the insert; 0 in an entry of 0.1.0 */
};

/*
 * A slot of the half-open table (mixlb_half_open, bpf/lib/conntrack.h): the
 * decision of a flow that has sent one packet, in slot flow hash & mask. A
 * slot is written with plain stores, so two CPUs writing one slot at once
 * can leave a flow with another's decision; `check` (mixlb_half_open_check()
 * in flow_hash.h, over the flow's hash and the decision) then fails and the
 * slot is read as empty. family 0 (no real flow has it) marks an empty slot.
 */
struct mixlb_half_open {
	struct mixlb_flow_key flow;
	struct mixlb_ct_value decision;
	__u32 check;
	__u32 pad;
};

/*
 * A slot of the connection-table cache (mixlb_ct_cache, bpf/lib/conntrack.h):
 * one CPU's copy of a connection-table entry, good within the tick (the
 * jiffies value) it was copied in. family 0 in the flow marks an empty slot.
 */
struct mixlb_ct_cached {
	struct mixlb_flow_key flow;
	struct mixlb_ct_value value;
	__u64 jiffies;
};

/*
 * Flows one run of the invalidation program takes (bpf/ct_invalidate.bpf.c):
 * more than an invalidation datagram carries (about 95 IPv4 flows).
 */
#define MIXLB_INVALIDATE_BATCH 128u

/* Slots of each CPU's connection-table cache: 2^MIXLB_CT_CACHE_BITS. */
#define MIXLB_CT_CACHE_BITS 12
#define MIXLB_CT_CACHE_SLOTS (1u << MIXLB_CT_CACHE_BITS)

/* last_seen_ns is refreshed at most this often, to keep hits read-mostly. */
#define MIXLB_CT_TOUCH_NS 100000000ull

/*
 * A 4096-bit filter over addresses: a clear bit proves "not one of ours"
 * with one array read (mixlb_filter_bit() in flow_hash.h picks the bit).
 * One filter holds the VIP addresses, another the peers' MACs.
 */
#define MIXLB_FILTER_WORDS 64u
struct mixlb_filter {
	__u64 words[MIXLB_FILTER_WORDS];
};

/*
 * A CPU's last reading of the coarse clock and the jiffies it was taken at
 * (mixlb_clock, bpf/lib/clock.h): the clock is read again when jiffies moves.
 */
struct mixlb_clock {
	__u64 jiffies;
	__u64 ns;
};

/*
 * The next hop towards a node, as bpf_fib_lookup last answered it, per CPU
 * and indexed by the node's stats slot. Only successful lookups are cached,
 * for MIXLB_FIB_CACHE_NS, so a neighbour that goes away is noticed within
 * that time and NO_NEIGH still drops.
 */
struct mixlb_fib_cache {
	__u64 expires_ns;
	__u32 node_id;
	__u32 ifindex;         /* egress */
	__u32 ingress_ifindex; /* the lookup's input: forwarding is per device */
	__u16 mtu;
	__u8 dmac[6];
	__u8 smac[6];
	__u8 pad[6];
};

#define MIXLB_FIB_CACHE_NS 500000000ull

/*
 * A node of the cluster, keyed by its node id. stats_slot indexes the node's
 * column in the per-(VIP, node) counters; this node's own slot is always 0.
 */
struct mixlb_node {
	__u32 addr[4]; /* the node's address on the balancing segment */
	__u8 family;
	__u8 pad[3];
	__u32 stats_slot;
};

#define MIXLB_SELF_STATS_SLOT 0u

/* Key of the peer-MAC map: a frame from one of these was balanced already. */
struct mixlb_mac {
	__u8 addr[6];
	__u8 pad[2];
};

/*
 * Why a VIP packet was dropped. One enum for the whole data path; the C++
 * side has a name for each (sidecar/kernel/abi.cc) and a test that the two match.
 */
enum mixlb_drop_reason {
	MIXLB_DROP_NONE = 0,
	MIXLB_DROP_NO_BACKEND,      /* the VIP's table has no node */
	MIXLB_DROP_UNKNOWN_NODE,    /* the table names a node the node map lacks */
	MIXLB_DROP_TABLE_LOOKUP,    /* the Maglev slot lookup failed */
	MIXLB_DROP_FIB_NO_NEIGH,    /* bpf_fib_lookup: neighbour not resolved */
	MIXLB_DROP_FIB_FWD_DISABLED,/* bpf_fib_lookup: forwarding disabled */
	MIXLB_DROP_FIB_FRAG_NEEDED, /* bpf_fib_lookup: larger than the egress MTU */
	MIXLB_DROP_FIB_OTHER,       /* bpf_fib_lookup: any other failure */
	MIXLB_DROP_REDIRECT,        /* bpf_redirect refused the egress device */
	MIXLB_DROP__MAX,
};

/* Per-CPU counters of one VIP (index: vip_id). */
struct mixlb_vip_stats {
	__u64 local_pkts;     /* served by this node */
	__u64 local_bytes;
	__u64 fwd_pkts;       /* forwarded to a peer */
	__u64 fwd_bytes;
	__u64 from_peer_pkts; /* balanced by a peer, delivered here */
	__u64 from_peer_bytes;
	__u64 drop_pkts[MIXLB_DROP__MAX];
};

/*
 * Per-CPU counters of one (VIP, node) pair, index vip_id * max_nodes +
 * node.stats_slot: packets this node served (slot 0) or sent to that node.
 */
struct mixlb_backend_stats {
	__u64 pkts;
	__u64 bytes;
};

/* Global per-CPU counters (index: enum mixlb_counter). */
enum mixlb_counter {
	MIXLB_CNT_CT_HIT = 0,
	MIXLB_CNT_CT_MISS,
	MIXLB_CNT_CT_INSERT,
	MIXLB_CNT_CT_INSERT_FAIL,
	MIXLB_CNT_CT_NON_SYN_MISS, /* a TCP flow first seen mid-stream */
	MIXLB_CNT_ICMP_ERROR,      /* ICMP errors about a VIP flow, sent to its node */
	MIXLB_CNT_FROM_PEER,       /* frames a peer balanced, delivered here */
	MIXLB_CNT__MAX,
};

/* Slots of the fib-result counters: bpf_fib_lookup's return codes 0..15. */
#define MIXLB_FIB_RET_SLOTS 16u

/* Settings the sidecar changes at run time (one element, index 0). */
struct mixlb_settings {
	__u32 any_port_vips; /* non-zero: some VIP is "all ports", look it up too */
	__u32 reserved;
};

/*
 * What a dry-run instance of the program decided about the last frame it
 * was given ("which node would this flow go to?"). A dry run shares the live
 * maps but changes none of them.
 */
struct mixlb_decision {
	__u32 node_id;   /* the node chosen, MIXLB_NODE_NONE if none */
	__u32 verdict;   /* the XDP verdict returned */
	__u32 drop;      /* enum mixlb_drop_reason when dropped */
	__u32 vip_id;
	__u32 flags;     /* enum mixlb_decision_flag */
	__u32 reserved;
};

enum mixlb_decision_flag {
	MIXLB_DECIDED_VIP = 1u << 0,       /* the frame was for a VIP */
	MIXLB_DECIDED_CT_HIT = 1u << 1,    /* the connection table answered */
	MIXLB_DECIDED_FROM_PEER = 1u << 2, /* sent by a peer: delivered locally */
	MIXLB_DECIDED_ICMP = 1u << 3,      /* an ICMP error about the flow */
};

/*
 * Close tracking (mixlb_close.bpf.c): a local TCP socket of a VIP closed.
 * flow is its connection-table key (client -> VIP), at_ns bpf_ktime_get_ns().
 * origin_node is the peer that balanced the flow here (mixlb_origins),
 * MIXLB_NODE_NONE when no peer did or its record is gone.
 */
struct mixlb_close_event {
	struct mixlb_flow_key flow;
	__u64 at_ns;
	__u32 origin_node;
	__u32 flags; /* enum mixlb_close_event_flag */
};

enum mixlb_close_event_flag {
	MIXLB_CLOSE_EV_DELETED = 1u << 0, /* this node's own entry of the flow was deleted */
};

/* Counters of close tracking (per-CPU array mixlb_close_stats). */
enum mixlb_close_counter {
	MIXLB_CLOSE_SEEN = 0,      /* a socket of a VIP closed */
	MIXLB_CLOSE_DELETED = 1,   /* ... and this node's entry of it was deleted */
	MIXLB_CLOSE_RING_FULL = 2, /* ... and its event found the ring full (lost) */
	MIXLB_CLOSE_COUNTER_MAX = 3,
};

/*
 * The reuseport selector (mixlb_reuseport.bpf.c). A service is one
 * SO_REUSEPORT group of the app's: the sockets of one (family, protocol,
 * bound address, port). Every managed socket sits in the sockarray
 * mixlb_rp_socks at an index the sidecar hands out; a generation's workers
 * are a table of such indices, and a service names the table of its active
 * generation, so switching generations is one write of the service.
 */
#define MIXLB_RP_MAX_SOCKETS 4096u
#define MIXLB_RP_MAX_SERVICES 64u
#define MIXLB_RP_MAX_TABLES 256u   /* generations alive at once, over all services */
#define MIXLB_RP_TABLE_SLOTS 257u  /* a worker table: a Maglev table, so a prime */
#define MIXLB_RP_DEFAULT_FLOWS 65536u
#define MIXLB_RP_NO_TABLE 0xffffffffu

/* A service: the group's bound address and port, as its sockets see them. */
struct mixlb_rp_key {
	__u32 addr[4]; /* the bound address (all zero: any); IPv4 in addr[0], network order */
	__u16 port;    /* host order (struct bpf_sock's src_port) */
	__u8 proto;    /* IPPROTO_TCP / IPPROTO_UDP */
	__u8 family;   /* MIXLB_AF_INET / MIXLB_AF_INET6: the sockets' family */
};

enum mixlb_rp_policy {
	MIXLB_RP_POLICY_HASH = 0, /* the flow hash over the table (consistent) */
	MIXLB_RP_POLICY_CPU = 1,  /* the receiving CPU's slot */
};

struct mixlb_rp_service {
	__u32 table;       /* the active generation's table; MIXLB_RP_NO_TABLE: the kernel's choice */
	__u32 policy;      /* enum mixlb_rp_policy */
	__u64 udp_idle_ns; /* a UDP flow idle this long is placed afresh */
};

/* A generation's workers: mixlb_rp_socks indices, MIXLB_RP_TABLE_SLOTS of them. */
struct mixlb_rp_table {
	__u32 socks[MIXLB_RP_TABLE_SLOTS];
};

/* A UDP flow of a service: the remote end, as the datagram came. */
struct mixlb_rp_flow_key {
	struct mixlb_rp_key service;
	__u32 remote[4];
	__be16 remote_port;
	__u8 pad[2];
};

/*
 * The socket a UDP flow started on. The sidecar writes each socket's cookie
 * beside its index (mixlb_rp_cookies), so a flow never follows an index that
 * another socket has taken since.
 */
struct mixlb_rp_flow {
	__u64 cookie;
	__u64 last_seen_ns; /* bpf_ktime_get_ns() */
	__u32 sock;         /* index in mixlb_rp_socks */
	__u32 table;        /* the generation (table) it was placed by */
};

/* Per-CPU counters of one table (one generation), index: its table. */
struct mixlb_rp_stats {
	__u64 selected;  /* new flows (TCP SYNs, UDP flows) given a socket of this generation */
	__u64 migrated;  /* closing listeners' requests and children moved to it */
	__u64 sticky;    /* UDP datagrams that followed their flow to a socket placed by it */
	__u64 fallback;  /* its socket was gone: the kernel's own hash chose */
};

#endif /* MIXLB_ABI_H */
