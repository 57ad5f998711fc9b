#pragma once
// What the kernel cases of the netlink and sysctl tests need from this
// machine, each found once: the privilege to make a network namespace, and
// IPv6 inside one. doctest cannot skip from inside a running case, so these
// probes run before the cases register and feed their skip decorators; a case
// whose need is missing reports skipped, and the reason goes to stderr as
// "[cases] skipped: reason", the line tools/run_tests.py lists. The probes
// use plain system calls rather than the netlink code under test, so a bug in
// that code fails its cases instead of skipping them.
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <thread>

namespace mixlb::test {

struct Probe {
  bool ok = false;
  std::string reason;
};

// Runs `check` on a thread of its own that has moved into a fresh network
// namespace, so this process keeps its namespace and whatever `check` sees is
// what a test's private namespace will see.
inline Probe probe_in_private_netns(const std::function<Probe()>& check) {
  Probe p;
  std::thread([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      p.reason = std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno) +
                 " (they need root or CAP_SYS_ADMIN)";
      return;
    }
    p = check();
  }).join();
  return p;
}

inline const Probe& netns_probe() {
  static const Probe probe = probe_in_private_netns([] { return Probe{true, ""}; });
  return probe;
}

// IPv6 works in a new namespace when the kernel has it (a socket of the
// family opens: ipv6.disable=1 or a missing module make that fail) and the
// namespace's lo does not start with it disabled (a host setting that new
// namespaces may copy, see net.core.devconf_inherit_init_net).
inline const Probe& ipv6_probe() {
  static const Probe probe = probe_in_private_netns([] {
    const int fd = ::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
      return Probe{false, std::string("socket(AF_INET6): ") + std::strerror(errno) +
                              " (IPv6 is disabled or absent in this kernel)"};
    ::close(fd);
    std::ifstream disabled("/proc/sys/net/ipv6/conf/lo/disable_ipv6");
    std::string value;
    if (!(disabled >> value))
      return Probe{false, "net.ipv6.conf.lo.disable_ipv6 cannot be read in a new namespace"};
    if (value != "0")
      return Probe{false, "net.ipv6.conf.lo.disable_ipv6 is " + value + " in a new namespace"};
    return Probe{true, ""};
  });
  return probe;
}

// For skip decorators: true when `p` found what `cases` need; otherwise says
// which cases are skipped and why.
inline bool probe_ok(const char* cases, const Probe& p) {
  if (!p.ok) std::fprintf(stderr, "[%s] skipped: %s\n", cases, p.reason.c_str());
  return p.ok;
}

inline bool can_unshare_netns(const char* cases) { return probe_ok(cases, netns_probe()); }

inline bool ipv6_works(const char* cases) { return probe_ok(cases, ipv6_probe()); }

}  // namespace mixlb::test
