#pragma once
// What the sidecar needs to be allowed, checked before it does anything, so
// a missing privilege is reported as such ("needs CAP_BPF") rather than as
// the errno of whichever syscall happens to come first.
//
// Loading the program needs CAP_BPF and CAP_PERFMON, attaching it and
// changing addresses, neighbours and sysctls CAP_NET_ADMIN; CAP_SYS_ADMIN
// stands in for the first two, as in the kernel's bpf_capable() and
// perfmon_capable().
#include <string>
#include <vector>

namespace mixlb {

// The names of the capabilities the sidecar lacks ("CAP_BPF", ...); empty
// when it has what it needs. Reads the effective set of this thread.
std::vector<std::string> missing_capabilities();

// One sentence for a start that cannot go on, or "" when nothing is missing.
std::string capability_problem();

}  // namespace mixlb
