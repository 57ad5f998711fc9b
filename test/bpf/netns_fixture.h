#pragma once
// Shared by the tests that need the kernel: whether BPF can run here (and why
// not, for the skip message), and a private network namespace with three
// veth devices, addresses and neighbours, built once per test process:
//
//   dp0 10.0.0.1/24  -- neighbours: 10.0.0.2 (peer, resolved), 10.0.0.3 (ghost, none)
//       fd00::1/64   -- neighbours: fd00::2 (peer6, resolved), fd00::3 (ghost6, none)
//   dp1 10.0.5.1/24  -- neighbour 10.0.5.2 (far peer: egress differs -> redirect)
//   dp2 10.0.9.1/24  -- forwarding disabled
#include <bpf/libbpf.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include <doctest/doctest.h>

#include "kernel/datapath.h"
#include "packet.h"

namespace mixlb {

using test::Mac;

inline const char* skip_reason() {
  static const std::string reason = [] {
    if (geteuid() != 0) return std::string("not root");
    if (libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_XDP, nullptr) != 1)
      return std::string("kernel refuses XDP programs");
    return std::string();
  }();
  return reason.c_str();
}

inline bool cannot_run() {
  static const bool skip = [] {
    if (*skip_reason()) std::fprintf(stderr, "datapath tests skipped: %s\n", skip_reason());
    return *skip_reason() != 0;
  }();
  return skip;
}

// /sys shows the namespace it was mounted in, so ask the kernel through a
// socket that lives in this one.
inline Mac read_mac(const std::string& dev) {
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  REQUIRE(fd >= 0);
  ifreq req{};
  std::snprintf(req.ifr_name, sizeof(req.ifr_name), "%s", dev.c_str());
  const int rc = ioctl(fd, SIOCGIFHWADDR, &req);
  close(fd);
  REQUIRE(rc == 0);
  Mac mac{};
  std::memcpy(mac.data(), req.ifr_hwaddr.sa_data, 6);
  return mac;
}

// Whether `ifindex` has no XDP program within a second. A link that loses
// its last reference (its pin removed, its fds closed) is freed by the
// kernel asynchronously (unlinking the last pin frees its inode after an
// RCU grace period), so the program may stay attached for a moment after
// the call that let it go.
inline bool xdp_detached_soon(int ifindex) {
  for (int i = 0; i < 100; ++i) {
    if (!query_xdp_mode(ifindex).has_value()) return true;
    usleep(10'000);
  }
  return false;
}

inline void sh(const std::string& cmd) {
  INFO("command: " << cmd);
  REQUIRE(std::system((cmd + " >/dev/null 2>&1").c_str()) == 0);
}

struct TestNet {
  int dp0 = 0, dp1 = 0, dp2 = 0;
  Mac dp0_mac{}, dp1_mac{};
};

inline const TestNet& test_net() {
  static TestNet net = [] {
    REQUIRE(unshare(CLONE_NEWNET) == 0);
    sh("ip link set lo up");
    for (const char* n : {"dp0", "dp1", "dp2"}) {
      sh(std::string("ip link add ") + n + " type veth peer name " + n + "p");
      sh(std::string("ip link set ") + n + " up");
      sh(std::string("ip link set ") + n + "p up");
    }
    sh("ip addr add 10.0.0.1/24 dev dp0");
    sh("ip addr add 10.0.5.1/24 dev dp1");
    sh("ip addr add 10.0.9.1/24 dev dp2");
    sh("ip neigh add 10.0.0.2 lladdr 02:aa:00:00:00:02 dev dp0 nud permanent");
    sh("ip neigh add 10.0.5.2 lladdr 02:aa:00:00:05:02 dev dp1 nud permanent");
    sh("ip -6 addr add fd00::1/64 dev dp0 nodad");
    sh("ip -6 neigh add fd00::2 lladdr 02:aa:00:00:00:62 dev dp0 nud permanent");
    sh("sysctl -w net.ipv4.conf.all.forwarding=1");
    sh("sysctl -w net.ipv6.conf.all.forwarding=1");
    sh("sysctl -w net.ipv4.conf.dp2.forwarding=0");
    TestNet n;
    n.dp0 = static_cast<int>(if_nametoindex("dp0"));
    n.dp1 = static_cast<int>(if_nametoindex("dp1"));
    n.dp2 = static_cast<int>(if_nametoindex("dp2"));
    n.dp0_mac = read_mac("dp0");
    n.dp1_mac = read_mac("dp1");
    return n;
  }();
  return net;
}

// The settings of the small programs the tests load: a few VIPs, nodes and
// connections, no pinning.
inline DatapathSettings small_test_settings(std::uint32_t self_node_id, std::uint32_t ring_size) {
  DatapathSettings s;
  s.self_node_id = self_node_id;
  s.ring_size = ring_size;
  s.max_vips = 4;
  s.conntrack_entries = 1024;
  s.max_nodes = 16;
  return s;
}

// Loads the real program with `settings`; the test fails with the reason if
// it cannot.
inline std::unique_ptr<XdpProgram> load_test_program(const DatapathSettings& settings) {
  auto loaded = XdpProgram::load(settings);
  REQUIRE_MESSAGE(loaded.has_value(), (loaded ? "" : loaded.error().message()));
  return std::move(*loaded);
}

}  // namespace mixlb
