/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Packet parsing: Ethernet, IPv4, TCP, into the flow key the rest of the
 * program works with. Every header is bounds-checked before it is read.
 * Parsing never writes to the packet; whatever it does not understand is
 * reported as "not ours" and the caller passes the packet untouched.
 */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "mixlb_abi.h"

#define ETH_P_IP 0x0800
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff
#define IPPROTO_TCP_ 6

enum lb_parse_result {
	LB_PARSE_OK = 0,
	LB_PARSE_NOT_OURS, /* not a packet the balancer may touch */
};

struct lb_packet {
	struct mixlb_flow_key flow;
	__u32 ip_tot_len; /* IP total length, as the header claims */
	__u8 tcp_flags;   /* MIXLB_CT_SEEN_* bits seen on this packet */
	__u8 is_syn;      /* SYN without ACK: a new connection */
};

static __always_inline int lb4_parse(struct xdp_md *ctx, struct lb_packet *pkt)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct tcphdr *tcp;
	__u32 ihl_bytes, tot_len;

	if ((void *)(eth + 1) > data_end)
		return LB_PARSE_NOT_OURS;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return LB_PARSE_NOT_OURS;

	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return LB_PARSE_NOT_OURS;
	if (ip->version != 4 || ip->ihl < 5)
		return LB_PARSE_NOT_OURS;
	/* A fragment may lack the ports; the stack reassembles it. */
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return LB_PARSE_NOT_OURS;
	if (ip->protocol != IPPROTO_TCP_)
		return LB_PARSE_NOT_OURS;

	ihl_bytes = ip->ihl * 4;
	tot_len = bpf_ntohs(ip->tot_len);
	/* A header that claims less than its own options and a TCP header lies. */
	if (tot_len < ihl_bytes + sizeof(struct tcphdr))
		return LB_PARSE_NOT_OURS;

	tcp = (void *)ip + ihl_bytes;
	if ((void *)(tcp + 1) > data_end)
		return LB_PARSE_NOT_OURS;

	__builtin_memset(pkt, 0, sizeof(*pkt));
	pkt->flow.src[0] = ip->saddr;
	pkt->flow.dst[0] = ip->daddr;
	pkt->flow.sport = tcp->source;
	pkt->flow.dport = tcp->dest;
	pkt->flow.proto = IPPROTO_TCP_;
	pkt->flow.family = MIXLB_AF_INET;
	pkt->ip_tot_len = tot_len;
	if (tcp->syn)
		pkt->tcp_flags |= MIXLB_CT_SEEN_SYN;
	if (tcp->fin)
		pkt->tcp_flags |= MIXLB_CT_SEEN_FIN;
	if (tcp->rst)
		pkt->tcp_flags |= MIXLB_CT_SEEN_RST;
	pkt->is_syn = tcp->syn && !tcp->ack;
	return LB_PARSE_OK;
}
