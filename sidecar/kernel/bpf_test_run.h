#pragma once
// BPF_PROG_TEST_RUN for the XDP program: hand the kernel one frame, get the
// verdict and the frame as the program left it. The datapath tests use it on
// the real program object, and so will the "which node would this flow go
// to?" tool: one wrapper, so both see exactly what the data path does.
#include <cstdint>
#include <span>
#include <vector>

#include "kernel/datapath.h"

namespace mixlb {

struct XdpRunResult {
  std::uint32_t verdict = 0;          // XDP_PASS, XDP_TX, ...
  std::vector<std::uint8_t> packet;   // the frame after the program ran
  std::uint32_t duration_ns = 0;      // the kernel's measurement of the run
};

// Runs the program once on `frame`, as if it arrived on `ingress_ifindex`
// (0: the kernel's default, loopback).
DpResult<XdpRunResult> xdp_test_run(int prog_fd, std::span<const std::uint8_t> frame,
                                    int ingress_ifindex = 0);

}  // namespace mixlb
