// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Invalidations applied in the kernel: one BPF_PROG_RUN deletes a batch of
 * connection-table entries, each only while it still points at the node
 * that sent the invalidation (a 5-tuple that a newer SYN balanced elsewhere
 * keeps its entry). The sidecar (sidecar/kernel/ct_invalidate.h) writes the
 * batch into this object's global data, which it has mapped, and runs the
 * program: one syscall per received datagram instead of one per flow.
 *
 * A packet of a reused 5-tuple that replaces the entry between the lookup
 * and the delete loses its new entry; its next packet takes the Maglev
 * answer, which is the node its SYN got unless the tables changed within
 * that microsecond. The sidecar's per-flow path (a lookup-and-delete and a
 * put-back, where this program does not load) has the same window the
 * other way round.
 *
 * mixlb_ct is the XDP program's map, shared by fd before the load; the other
 * maps of shared_maps.h are not created (the sidecar turns their autocreate
 * off), since nothing here uses them.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "lib/shared_maps.h"

/* Set by the caller before each run. */
struct mixlb_flow_key inval_flows[MIXLB_INVALIDATE_BATCH];
__u32 inval_count;
__u32 inval_node;
/* Set by the run: the entries it deleted. */
__u32 inval_deleted;

SEC("syscall")
int ct_invalidate(void *ctx)
{
	__u32 n = inval_count, node = inval_node, deleted = 0;

	for (__u32 i = 0; i < MIXLB_INVALIDATE_BATCH && i < n; i++) {
		struct mixlb_flow_key key = inval_flows[i];
		struct mixlb_ct_value *entry = bpf_map_lookup_elem(&mixlb_ct, &key);

		if (entry && entry->node_id == node && bpf_map_delete_elem(&mixlb_ct, &key) == 0)
			deleted++;
	}
	inval_deleted = deleted;
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
