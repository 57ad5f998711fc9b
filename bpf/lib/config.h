/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Load-time settings. They are const volatile globals in .rodata, written by
 * the loader through the skeleton before the program is loaded, so the
 * verifier sees them as constants and prunes what they switch off.
 */
#pragma once

#include "mixlb_abi.h"

/* This node's id: a flow the table gives to it is passed to the local stack. */
const volatile __u32 mixlb_self_node_id = MIXLB_NODE_NONE;

/* Slots per Maglev table half (prime). */
const volatile __u32 mixlb_ring_size = MIXLB_DEFAULT_RING_SIZE;

/* Slots of the half-open table - 1 (a power of two - 1; conntrack.h). */
const volatile __u32 mixlb_half_open_mask = MIXLB_DEFAULT_CT_ENTRIES / 4 - 1;

/* Columns of the per-(VIP, node) counters. */
const volatile __u32 mixlb_max_nodes = MIXLB_DEFAULT_MAX_NODES;

/*
 * A dry-run instance answers "which node would this flow go to?" from the
 * live maps without changing them: no connection entries, no counters; the
 * decision goes to mixlb_last_decision instead. In the serving instance this
 * is 0 and the verifier removes every dry-run branch.
 */
const volatile __u8 mixlb_dry_run = 0;

struct mixlb_decision mixlb_last_decision = {};
