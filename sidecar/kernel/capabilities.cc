#include "kernel/capabilities.h"

#include <fmt/format.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>

namespace mixlb {
namespace {

// Older headers lack the two capabilities Linux 5.8 split off CAP_SYS_ADMIN.
constexpr int kCapNetAdmin = 12;
constexpr int kCapSysAdmin = 21;
constexpr int kCapPerfmon = 38;
constexpr int kCapBpf = 39;

bool effective(const __user_cap_data_struct (&data)[2], int cap) {
  return (data[cap / 32].effective >> (cap % 32)) & 1u;
}

}  // namespace

std::vector<std::string> missing_capabilities() {
  __user_cap_header_struct header{};
  header.version = _LINUX_CAPABILITY_VERSION_3;
  header.pid = 0;
  __user_cap_data_struct data[2]{};
  if (::syscall(SYS_capget, &header, data) != 0) return {};  // cannot tell: let the kernel decide
  const bool sys_admin = effective(data, kCapSysAdmin);
  std::vector<std::string> missing;
  if (!effective(data, kCapNetAdmin)) missing.emplace_back("CAP_NET_ADMIN");
  if (!sys_admin && !effective(data, kCapBpf)) missing.emplace_back("CAP_BPF");
  if (!sys_admin && !effective(data, kCapPerfmon)) missing.emplace_back("CAP_PERFMON");
  return missing;
}

std::string capability_problem() {
  const auto missing = missing_capabilities();
  if (missing.empty()) return "";
  return fmt::format("mixlb must run as root or with CAP_NET_ADMIN, CAP_BPF and CAP_PERFMON; this "
                     "process lacks {}",
                     fmt::join(missing, ", "));
}

}  // namespace mixlb
