#pragma once
// Whether this process may make network namespaces, found once: the kernel
// cases of the netlink and sysctl tests need one each and report skipped,
// with the reason, where they cannot have it.
#include <sched.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

namespace mixlb::test {

struct NetnsProbe {
  bool ok = false;
  std::string reason;
};

inline const NetnsProbe& netns_probe() {
  static const NetnsProbe probe = [] {
    NetnsProbe p;
    // On a thread of its own, so this process keeps its namespace.
    std::thread([&] {
      if (::unshare(CLONE_NEWNET) == 0)
        p.ok = true;
      else
        p.reason = std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno);
    }).join();
    return p;
  }();
  return probe;
}

// For skip decorators: true when namespaces work; otherwise says which cases
// are skipped and why.
inline bool can_unshare_netns(const char* cases) {
  const auto& p = netns_probe();
  if (!p.ok)
    std::fprintf(stderr, "[%s] skipped: %s (they need root or CAP_SYS_ADMIN)\n", cases, p.reason.c_str());
  return p.ok;
}

}  // namespace mixlb::test
