#pragma once
// The sidecar pins its maps and its XDP link on a BPF filesystem, so they
// outlive the process. A new machine boots with nothing mounted on
// /sys/fs/bpf, so, as Cilium's agent does, the sidecar mounts one there when
// its pin directory is below /sys/fs/bpf and nothing is mounted yet. A pin
// directory elsewhere must already be on a bpffs: pins cannot be made on any
// other filesystem, and the error says so up front instead of as the errno
// of the first pin.
//
// Tests, benchmarks and the demo get their bpffs through the same function.
#include <expected>
#include <string>

namespace mixlb {

inline constexpr const char* kBpffsRoot = "/sys/fs/bpf";

struct BpffsReady {
  bool mounted = false;  // this call mounted a bpffs on kBpffsRoot
};

// Makes sure `pin_dir` (which need not exist yet) lies on a bpffs. The
// error is one sentence that names bpffs, the directory and what to do.
std::expected<BpffsReady, std::string> ensure_bpffs(const std::string& pin_dir);

// Whether `path` (an existing directory) is on a bpffs.
bool on_bpffs(const std::string& path);

}  // namespace mixlb
