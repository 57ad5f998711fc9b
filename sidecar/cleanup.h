#pragma once
// `mixlb cleanup`: puts a node's host back as it was before its first
// sidecar, for a node whose sidecar is gone (stopped for a restart that
// never came, crashed, or its container removed). From the host record
// (kernel/host_record.h) and the pin directory it removes the pinned maps
// and link (which detaches the XDP program), the VIPs mixlb put on lo, the
// neighbour entries it made, and restores the sysctls it changed. It refuses
// while a sidecar of that node runs (the instance lock), and leaves the
// network-namespace part alone when run outside the namespace the record
// was made in.
#include <string>

namespace mixlb {

struct CleanupOptions {
  std::string node;
  std::string run_dir = "/run/mixlb";
  std::string bpffs_dir = "/sys/fs/bpf/mixlb";
};

// Returns the exit code: 0 when everything is back, 1 when something could
// not be (each said on stderr), 2 when it refused to start.
int run_cleanup(const CleanupOptions& options);

}  // namespace mixlb
