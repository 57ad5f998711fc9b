#pragma once
// Invalidations applied in the kernel (bpf/ct_invalidate.bpf.c): a syscall
// program on the XDP program's connection table deletes a batch of entries,
// each only while it still points at the node that sent the invalidation.
// One BPF_PROG_RUN per batch of up to MIXLB_INVALIDATE_BATCH flows, instead
// of a lookup-and-delete syscall per flow (DatapathMaps::invalidate), which
// copies a key and a value through the kernel each time.
//
// Loaded per process and never attached or pinned; needs CAP_BPF and a
// kernel with syscall programs (5.14). The Invalidator falls back to the
// per-flow calls when it cannot be loaded.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "kernel/abi.h"
#include "kernel/datapath.h"

struct ct_invalidate;  // the generated skeleton

namespace mixlb {

class CtInvalidateProgram {
 public:
  // Loads the program on the connection table `ct_fd` (the XDP program's).
  static DpResult<std::unique_ptr<CtInvalidateProgram>> load(int ct_fd);
  ~CtInvalidateProgram();
  CtInvalidateProgram(const CtInvalidateProgram&) = delete;
  CtInvalidateProgram& operator=(const CtInvalidateProgram&) = delete;

  // Deletes each flow's entry that points at `node`; returns how many it
  // deleted. Any number of flows: one run per MIXLB_INVALIDATE_BATCH.
  DpResult<std::size_t> apply(std::span<const mixlb_flow_key> flows, std::uint32_t node);

 private:
  CtInvalidateProgram() = default;
  ct_invalidate* skel_ = nullptr;
};

}  // namespace mixlb
