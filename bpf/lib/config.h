/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Load-time settings. They are const volatile globals in .rodata, written by
 * the loader through the skeleton before the program is loaded, so the
 * verifier sees them as constants.
 */
#pragma once

#include "mixlb_abi.h"

/* This node's id: a flow the table gives to it is passed to the local stack. */
const volatile __u32 mixlb_self_node_id = MIXLB_NODE_NONE;

/* Slots per Maglev table half (prime). */
const volatile __u32 mixlb_ring_size = MIXLB_DEFAULT_RING_SIZE;
