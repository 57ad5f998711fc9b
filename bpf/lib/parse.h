/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Packet parsing: Ethernet (with at most one VLAN tag), IPv4 or IPv6, then
 * TCP, UDP or an ICMP error, into the flow key the rest of the program works
 * with. Every header is bounds-checked before it is read, and parsing never
 * writes to the packet. Whatever it does not understand is "not ours" and the
 * caller passes the packet untouched.
 *
 * One path serves both families: only the IP header step (lb4_l3/lb6_l3) and
 * the ICMP type check know the family; ports, TCP flags and the embedded
 * header of an ICMP error are read by shared helpers.
 *
 * What is not ours (each one tested in test/bpf/):
 *   - a second VLAN tag, any ethertype other than IPv4/IPv6;
 *   - a frame shorter than its IP header's length says (lengths that lie
 *     either way pass: the stack drops them);
 *   - IPv4: version != 4, IHL < 5, options past the frame, total length
 *     shorter than the headers, any fragment (first or later: the router
 *     hashes fragments without ports, so all of a datagram's fragments reach
 *     one node, and that node's stack reassembles them);
 *   - IPv6: more than LB6_MAX_EXT extension headers, a fragment header, a
 *     routing header with segments left (the destination is not final),
 *     a payload length shorter than the headers;
 *   - ICMP other than errors (echo requests to a VIP are answered by the
 *     receiving node's own stack, which holds the VIP), and errors whose
 *     embedded header is not TCP/UDP of the same family.
 */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "mixlb_abi.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

/* TCP flags, as in byte 13 of the header. */
#define LB_TCP_FIN 0x01
#define LB_TCP_SYN 0x02
#define LB_TCP_RST 0x04
#define LB_TCP_ACK 0x10

#define LB_IPPROTO_TCP 6
#define LB_IPPROTO_UDP 17
#define LB_IPPROTO_ICMP 1
#define LB_IPPROTO_ICMPV6 58
#define LB_NEXTHDR_HOP 0
#define LB_NEXTHDR_ROUTING 43
#define LB_NEXTHDR_FRAGMENT 44
#define LB_NEXTHDR_DEST 60

/* Extension headers walked before giving up on an IPv6 packet. */
#define LB6_MAX_EXT 4

enum lb_parse_result {
	LB_PARSE_OK = 0,
	LB_PARSE_NOT_OURS, /* not a packet the balancer may touch */
};

enum lb_packet_kind {
	LB_KIND_FLOW = 0,   /* a TCP or UDP packet of the flow itself */
	LB_KIND_ICMP_ERROR, /* an ICMP error about the flow (flow key from its embedded header) */
};

struct lb_packet {
	struct mixlb_flow_key flow; /* client -> VIP, whatever direction the packet had */
	__u32 l3_len;               /* IP total length as the header claims */
	__u8 kind;                  /* enum lb_packet_kind */
	__u8 tcp_flags;             /* MIXLB_CT_SEEN_* bits of this packet */
	__u8 is_syn;                /* SYN without ACK: a new TCP connection */
	__u64 now_ns;               /* clock_coarse_ns() (clock.h), read once per VIP packet by the caller */
	__u64 now_jiffies;          /* the tick of now_ns */
};

/* Where the transport header starts and which protocol it is. */
struct lb_l4 {
	__u32 off;
	__u32 end; /* where the IP packet ends by its length field; 0 for an embedded header */
	__u8 proto;
};

static __always_inline void *lb_ptr(struct xdp_md *ctx, __u32 off, __u32 len)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *p = (void *)(long)ctx->data + off;

	if (p + len > data_end)
		return NULL;
	return p;
}

/* Whether the frame really holds the `len` bytes an IP header at `off` claims. */
static __always_inline bool lb_frame_holds(struct xdp_md *ctx, __u32 off, __u32 len)
{
	return ctx->data_end - ctx->data >= off + len;
}

/*
 * The IPv4 header at `off`: addresses into the flow key (as they stand),
 * protocol and transport offset into *l4. `inner` marks the header embedded
 * in an ICMP error, which may be shorter than its own length field says.
 */
static __always_inline int lb4_l3(struct xdp_md *ctx, __u32 off, struct lb_packet *pkt,
				  struct lb_l4 *l4, bool inner)
{
	struct iphdr *ip = lb_ptr(ctx, off, sizeof(*ip));
	__u32 ihl;

	if (!ip)
		return LB_PARSE_NOT_OURS;
	if (ip->version != 4 || ip->ihl < 5)
		return LB_PARSE_NOT_OURS;
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return LB_PARSE_NOT_OURS;
	ihl = ip->ihl * 4;
	if (!inner) {
		pkt->l3_len = bpf_ntohs(ip->tot_len);
		if (pkt->l3_len < ihl + 8 || !lb_frame_holds(ctx, off, pkt->l3_len))
			return LB_PARSE_NOT_OURS;
	}
	pkt->flow.src[0] = ip->saddr;
	pkt->flow.dst[0] = ip->daddr;
	pkt->flow.family = MIXLB_AF_INET;
	l4->end = inner ? 0 : off + pkt->l3_len;
	l4->off = off + ihl;
	l4->proto = ip->protocol;
	return LB_PARSE_OK;
}

/* The IPv6 header at `off` and its extension headers, as lb4_l3 does. */
static __always_inline int lb6_l3(struct xdp_md *ctx, __u32 off, struct lb_packet *pkt,
				  struct lb_l4 *l4, bool inner)
{
	struct ipv6hdr *ip6 = lb_ptr(ctx, off, sizeof(*ip6));
	__u32 end;
	__u8 next;
	int i;

	if (!ip6 || ip6->version != 6)
		return LB_PARSE_NOT_OURS;
	__builtin_memcpy(pkt->flow.src, &ip6->saddr, 16);
	__builtin_memcpy(pkt->flow.dst, &ip6->daddr, 16);
	pkt->flow.family = MIXLB_AF_INET6;
	if (!inner) {
		pkt->l3_len = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
		if (!lb_frame_holds(ctx, off, pkt->l3_len))
			return LB_PARSE_NOT_OURS;
	}
	end = off + sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
	next = ip6->nexthdr;
	off += sizeof(*ip6);

#pragma unroll
	for (i = 0; i < LB6_MAX_EXT; i++) {
		struct ipv6_opt_hdr *opt;
		struct ipv6_rt_hdr *rt;

		switch (next) {
		case LB_NEXTHDR_HOP:
		case LB_NEXTHDR_DEST:
			opt = lb_ptr(ctx, off, sizeof(*opt));
			if (!opt)
				return LB_PARSE_NOT_OURS;
			next = opt->nexthdr;
			off += (opt->hdrlen + 1) * 8;
			break;
		case LB_NEXTHDR_ROUTING:
			rt = lb_ptr(ctx, off, sizeof(*rt));
			if (!rt || rt->segments_left)
				return LB_PARSE_NOT_OURS;
			next = rt->nexthdr;
			off += (rt->hdrlen + 1) * 8;
			break;
		case LB_NEXTHDR_FRAGMENT:
			return LB_PARSE_NOT_OURS;
		default:
			goto done;
		}
	}
	/* Still an extension header after LB6_MAX_EXT of them. */
	if (next == LB_NEXTHDR_HOP || next == LB_NEXTHDR_DEST || next == LB_NEXTHDR_ROUTING ||
	    next == LB_NEXTHDR_FRAGMENT)
		return LB_PARSE_NOT_OURS;
done:
	if (!inner && off + 8 > end)
		return LB_PARSE_NOT_OURS;
	l4->end = inner ? 0 : end;
	l4->off = off;
	l4->proto = next;
	return LB_PARSE_OK;
}

/* The two ports that open both TCP and UDP headers. */
struct lb_ports_hdr {
	__be16 source;
	__be16 dest;
};

/*
 * Ports of the transport header embedded in an ICMP error: the error quotes
 * only 8 bytes of it for sure, so nothing past the ports is read.
 */
static __always_inline int lb_inner_ports(struct xdp_md *ctx, const struct lb_l4 *l4,
					  struct lb_packet *pkt)
{
	struct lb_ports_hdr *ports;

	if (l4->proto != LB_IPPROTO_TCP && l4->proto != LB_IPPROTO_UDP)
		return LB_PARSE_NOT_OURS;
	ports = lb_ptr(ctx, l4->off, sizeof(*ports));
	if (!ports)
		return LB_PARSE_NOT_OURS;
	pkt->flow.sport = ports->source;
	pkt->flow.dport = ports->dest;
	pkt->flow.proto = l4->proto;
	return LB_PARSE_OK;
}

/* Ports (and TCP flags) of the transport header at l4. */
static __always_inline int lb_ports(struct xdp_md *ctx, const struct lb_l4 *l4,
				    struct lb_packet *pkt)
{
	struct tcphdr *tcp;
	struct udphdr *udp;
	__u8 flags;

	if (l4->proto == LB_IPPROTO_TCP) {
		tcp = lb_ptr(ctx, l4->off, sizeof(*tcp));
		if (!tcp || (l4->end && l4->off + sizeof(*tcp) > l4->end))
			return LB_PARSE_NOT_OURS;
		pkt->flow.sport = tcp->source;
		pkt->flow.dport = tcp->dest;
		/* One read of the flags byte rather than one per bit field. */
		flags = ((const __u8 *)tcp)[13];
		if (flags & LB_TCP_SYN)
			pkt->tcp_flags |= MIXLB_CT_SEEN_SYN;
		if (flags & LB_TCP_FIN)
			pkt->tcp_flags |= MIXLB_CT_SEEN_FIN;
		if (flags & LB_TCP_RST)
			pkt->tcp_flags |= MIXLB_CT_SEEN_RST;
		pkt->is_syn = (flags & (LB_TCP_SYN | LB_TCP_ACK)) == LB_TCP_SYN;
	} else if (l4->proto == LB_IPPROTO_UDP) {
		udp = lb_ptr(ctx, l4->off, sizeof(*udp));
		if (!udp || (l4->end && l4->off + sizeof(*udp) > l4->end))
			return LB_PARSE_NOT_OURS;
		pkt->flow.sport = udp->source;
		pkt->flow.dport = udp->dest;
	} else {
		return LB_PARSE_NOT_OURS;
	}
	pkt->flow.proto = l4->proto;
	return LB_PARSE_OK;
}

static __always_inline bool lb_icmp_is_error(__u8 family, __u8 type)
{
	if (family == MIXLB_AF_INET)
		return type == 3 /* dest unreachable, incl. frag needed */ ||
		       type == 11 /* time exceeded */ || type == 12 /* parameter problem */;
	return type >= 1 && type <= 4; /* unreachable, too big, time exceeded, param problem */
}

/*
 * An ICMP error carries the start of the packet that caused it: a reply from
 * the VIP (VIP -> client). Its flow, seen from the client, is that header
 * with addresses and ports swapped.
 */
static __always_inline int lb_icmp_error(struct xdp_md *ctx, const struct lb_l4 *l4,
					 struct lb_packet *pkt)
{
	struct icmphdr *icmp = lb_ptr(ctx, l4->off, sizeof(*icmp));
	struct lb_packet inner = {};
	struct lb_l4 inner_l4 = {};
	__u8 family = pkt->flow.family;
	int ret;

	if (!icmp || !lb_icmp_is_error(family, icmp->type))
		return LB_PARSE_NOT_OURS;
	if (family == MIXLB_AF_INET)
		ret = lb4_l3(ctx, l4->off + sizeof(*icmp), &inner, &inner_l4, true);
	else
		ret = lb6_l3(ctx, l4->off + sizeof(*icmp), &inner, &inner_l4, true);
	if (ret != LB_PARSE_OK)
		return ret;
	ret = lb_inner_ports(ctx, &inner_l4, &inner);
	if (ret != LB_PARSE_OK)
		return ret;

	__builtin_memcpy(pkt->flow.src, inner.flow.dst, sizeof(pkt->flow.src));
	__builtin_memcpy(pkt->flow.dst, inner.flow.src, sizeof(pkt->flow.dst));
	pkt->flow.sport = inner.flow.dport;
	pkt->flow.dport = inner.flow.sport;
	pkt->flow.proto = inner.flow.proto;
	pkt->kind = LB_KIND_ICMP_ERROR;
	return LB_PARSE_OK;
}

static __always_inline int lb_parse(struct xdp_md *ctx, struct lb_packet *pkt)
{
	struct ethhdr *eth = lb_ptr(ctx, 0, sizeof(*eth));
	struct lb_l4 l4 = {};
	__u32 off = sizeof(*eth);
	__u16 proto;
	int ret;

	if (!eth)
		return LB_PARSE_NOT_OURS;
	proto = eth->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan_hdr *vlan = lb_ptr(ctx, off, sizeof(*vlan));

		if (!vlan)
			return LB_PARSE_NOT_OURS;
		proto = vlan->h_vlan_encapsulated_proto;
		off += sizeof(*vlan);
	}

	__builtin_memset(pkt, 0, sizeof(*pkt));
	if (proto == bpf_htons(ETH_P_IP))
		ret = lb4_l3(ctx, off, pkt, &l4, false);
	else if (proto == bpf_htons(ETH_P_IPV6))
		ret = lb6_l3(ctx, off, pkt, &l4, false);
	else
		return LB_PARSE_NOT_OURS;
	if (ret != LB_PARSE_OK)
		return ret;

	if ((l4.proto == LB_IPPROTO_ICMP && pkt->flow.family == MIXLB_AF_INET) ||
	    (l4.proto == LB_IPPROTO_ICMPV6 && pkt->flow.family == MIXLB_AF_INET6))
		return lb_icmp_error(ctx, &l4, pkt);
	return lb_ports(ctx, &l4, pkt);
}
