#include "kernel/ct_invalidate.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "ct_invalidate.skel.h"
#include "kernel/bpf_object.h"

namespace mixlb {

DpResult<std::unique_ptr<CtInvalidateProgram>> CtInvalidateProgram::load(int ct_fd) {
  std::unique_ptr<CtInvalidateProgram> self(new CtInvalidateProgram());
  self->skel_ = ct_invalidate__open();
  if (!self->skel_) return datapath_failure("opening the invalidation BPF object", errno);
  auto* skel = self->skel_;
  if (auto shared = share_map(skel->maps.mixlb_ct, ct_fd, "invalidation program"); !shared)
    return std::unexpected(shared.error());
  // The other maps of shared_maps.h: not used here, so not created.
  for (bpf_map* unused : {skel->maps.mixlb_vips, skel->maps.mixlb_origins})
    if (int err = bpf_map__set_autocreate(unused, false); err != 0)
      return datapath_failure(std::string("invalidation program: leaving out map ") + bpf_map__name(unused), err);
  if (int err = ct_invalidate__load(skel); err != 0) {
    std::string what = "loading the invalidation program";
    if (err == -EPERM || err == -EACCES) what += " (it needs CAP_BPF)";
    if (err == -EINVAL) what += " (a kernel with syscall programs, 5.14 or later)";
    return datapath_failure(what, err);
  }
  return self;
}

CtInvalidateProgram::~CtInvalidateProgram() {
  if (skel_) ct_invalidate__destroy(skel_);
}

DpResult<std::size_t> CtInvalidateProgram::apply(std::span<const mixlb_flow_key> flows, std::uint32_t node) {
  std::size_t deleted = 0;
  const int prog = bpf_program__fd(skel_->progs.ct_invalidate);
  while (!flows.empty()) {
    const std::size_t n = std::min<std::size_t>(flows.size(), MIXLB_INVALIDATE_BATCH);
    std::memcpy(skel_->bss->inval_flows, flows.data(), n * sizeof(mixlb_flow_key));
    skel_->bss->inval_count = static_cast<__u32>(n);
    skel_->bss->inval_node = node;
    LIBBPF_OPTS(bpf_test_run_opts, opts);
    if (bpf_prog_test_run_opts(prog, &opts) != 0) return datapath_failure("running the invalidation program", errno);
    deleted += skel_->bss->inval_deleted;
    flows = flows.subspan(n);
  }
  return deleted;
}

}  // namespace mixlb
