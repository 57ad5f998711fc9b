/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The flow hash that picks a Maglev slot. It is compiled into the XDP program
 * and into the C++ side (tests and the "which node?" tools), so both compute
 * the same slot for the same 5-tuple: one function, two compilers.
 *
 * It is Bob Jenkins' lookup3 ("jhash") over the ten 32-bit words of
 * struct mixlb_flow_key, written out for that fixed length so the BPF
 * compiler needs no loop. The key is hashed whole, so the destination
 * (the VIP) and the protocol take part: two VIPs spread flows independently.
 */
#ifndef MIXLB_FLOW_HASH_H
#define MIXLB_FLOW_HASH_H

#include "mixlb_abi.h"

#ifdef __cplusplus
#include <cstring>
#define MIXLB_HASH_INLINE static inline
#else
#define MIXLB_HASH_INLINE static __always_inline
#endif

#define MIXLB_HASH_SEED 0x6d69786cu /* "mixl" */

#define __mixlb_rot(x, k) (((x) << (k)) | ((x) >> (32 - (k))))

#define __mixlb_jmix(a, b, c)                                          \
	do {                                                           \
		a -= c; a ^= __mixlb_rot(c, 4);  c += b;              \
		b -= a; b ^= __mixlb_rot(a, 6);  a += c;              \
		c -= b; c ^= __mixlb_rot(b, 8);  b += a;              \
		a -= c; a ^= __mixlb_rot(c, 16); c += b;              \
		b -= a; b ^= __mixlb_rot(a, 19); a += c;              \
		c -= b; c ^= __mixlb_rot(b, 4);  b += a;              \
	} while (0)

#define __mixlb_jfinal(a, b, c)                                        \
	do {                                                           \
		c ^= b; c -= __mixlb_rot(b, 14);                       \
		a ^= c; a -= __mixlb_rot(c, 11);                       \
		b ^= a; b -= __mixlb_rot(a, 25);                       \
		c ^= b; c -= __mixlb_rot(b, 16);                       \
		a ^= c; a -= __mixlb_rot(c, 4);                        \
		b ^= a; b -= __mixlb_rot(a, 14);                       \
		c ^= b; c -= __mixlb_rot(b, 24);                       \
	} while (0)

/* Hash of a whole flow key (ten words). */
MIXLB_HASH_INLINE __u32 mixlb_flow_hash(const struct mixlb_flow_key *key)
{
	__u32 w[10];
	__u32 a, b, c;

#ifdef __cplusplus
	static_assert(sizeof(struct mixlb_flow_key) == sizeof(w), "flow key is ten words");
	std::memcpy(w, key, sizeof(w));
#else
	__builtin_memcpy(w, key, sizeof(w));
#endif
	a = b = c = 0xdeadbeefu + (10u << 2) + MIXLB_HASH_SEED;
	a += w[0]; b += w[1]; c += w[2];
	__mixlb_jmix(a, b, c);
	a += w[3]; b += w[4]; c += w[5];
	__mixlb_jmix(a, b, c);
	a += w[6]; b += w[7]; c += w[8];
	__mixlb_jmix(a, b, c);
	a += w[9];
	__mixlb_jfinal(a, b, c);
	return c;
}

/*
 * The check word of a half-open slot (struct mixlb_half_open): the flow's
 * hash mixed with what the decision says. A slot whose flow and decision
 * come from two different writes fails it, barring a 32-bit coincidence.
 */
MIXLB_HASH_INLINE __u32 mixlb_half_open_check(__u32 flow_hash, const struct mixlb_ct_value *d)
{
	__u32 c = flow_hash ^ (d->node_id * 0x9e3779b1u) ^
		  ((((__u32)d->vip_id << 16) | d->stats_slot) * 0x85ebca6bu);

	return c ^ (c >> 15);
}

/*
 * The filter bit of an address (four words, as in the keys) or of a MAC
 * (its six bytes in the first words, the rest zero): a multiplicative hash
 * of the folded words, top 12 bits.
 */
MIXLB_HASH_INLINE __u32 mixlb_filter_bit(const __u32 *words)
{
	__u32 folded = words[0] ^ (words[1] * 0x85ebca6bu) ^ (words[2] * 0xc2b2ae35u) ^
		       (words[3] * 0x27d4eb2fu);

	return (folded * 0x9e3779b1u) >> 20;
}

/*
 * The connection-table cache's slot of a flow (conntrack.h). The cache
 * compares the whole flow, so its index only has to spread flows, not pick
 * nodes: the key as five 64-bit words, the source's and ports' words and
 * the destination's each folded and multiplied, mixed once more (xor-shift,
 * multiply), the top bits. It is a few instructions where the flow hash is
 * about seventy, and a packet the cache answers computes only this. Flows
 * made to share a slot only miss the cache and ask the table.
 */
MIXLB_HASH_INLINE __u32 mixlb_ct_cache_slot(const struct mixlb_flow_key *key)
{
	__u64 x;
#ifdef __cplusplus
	__u64 w[5];

	static_assert(sizeof(struct mixlb_flow_key) == sizeof(w), "flow key is five 64-bit words");
	std::memcpy(w, key, sizeof(w));
#else
	/* The program's keys are 8-byte aligned (the stack is checked strictly). */
	const __u64 *w = (const __u64 *)key;
#endif

	x = ((w[0] ^ w[1] ^ w[4]) * 0x9e3779b97f4a7c15ull) ^ ((w[2] ^ w[3]) * 0xc2b2ae3d27d4eb4full);
	x ^= x >> 29;
	x *= 0xff51afd7ed558ccdull;
	return (__u32)(x >> (64 - MIXLB_CT_CACHE_BITS));
}

#endif /* MIXLB_FLOW_HASH_H */
