#include "kernel/bpf_test_run.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <cerrno>

namespace mixlb {

DpResult<XdpRunResult> xdp_test_run(int prog_fd, std::span<const std::uint8_t> frame,
                                    int ingress_ifindex) {
  XdpRunResult result;
  // Room for a program that grows the frame (encapsulation) by a header.
  result.packet.resize(frame.size() + 256);
  xdp_md ctx{};
  ctx.data = 0;
  ctx.data_end = static_cast<std::uint32_t>(frame.size());
  ctx.ingress_ifindex = static_cast<std::uint32_t>(ingress_ifindex);

  LIBBPF_OPTS(bpf_test_run_opts, opts);
  opts.data_in = frame.data();
  opts.data_size_in = static_cast<std::uint32_t>(frame.size());
  opts.data_out = result.packet.data();
  opts.data_size_out = static_cast<std::uint32_t>(result.packet.size());
  opts.repeat = 1;
  if (ingress_ifindex != 0) {
    opts.ctx_in = &ctx;
    opts.ctx_size_in = sizeof(ctx);
  }
  if (bpf_prog_test_run_opts(prog_fd, &opts) != 0)
    return std::unexpected(DatapathError{"BPF_PROG_TEST_RUN", std::error_code(errno, std::generic_category())});
  result.verdict = opts.retval;
  result.duration_ns = opts.duration;
  result.packet.resize(opts.data_size_out);
  return result;
}

}  // namespace mixlb
