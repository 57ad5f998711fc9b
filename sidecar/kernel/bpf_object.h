#pragma once
// What the sidecar does alike with each libbpf object it loads (the XDP
// program, the reuseport selector): find the maps it shares and pins, check
// maps pinned by an earlier run against what this build would create, and
// read per-CPU values.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "kernel/datapath.h"  // DpResult

struct bpf_object;
struct bpf_map;

namespace mixlb {

// The maps a loaded program shares and pins: every map of the object but
// the internal ones (.rodata, .bss), which belong to one program instance.
// Taken from the object itself, so a map added to bpf/ is pinned, adopted
// and shared without a list here to keep in step.
std::vector<bpf_map*> shared_maps(const bpf_object* obj);
bpf_map* find_map(const bpf_object* obj, std::string_view name);

// Checks the maps pinned under pin_dir by an earlier run against what this
// object would create (after its maps were sized): type, key and value
// sizes, entries and flags. libbpf would refuse a mismatch too, but only as
// "Invalid argument" from deep inside the load; this names the map and the
// difference. True when at least one map is pinned there (they are adopted).
DpResult<bool> check_pinned_maps(const bpf_object* obj, const std::string& pin_dir);

// Before `map`'s object is loaded: makes it the existing map `fd` (a map
// of the XDP program), sized as that one is, so both programs use one map.
// `who` begins the error's text ("close tracking: sizing map mixlb_ct").
DpResult<void> share_map(bpf_map* map, int fd, std::string_view who);

// Sets every shared map's pin path to pin_dir/<name> (libbpf then adopts
// what is pinned there and pins what it creates).
DpResult<void> set_pin_paths(bpf_object* obj, const std::string& pin_dir);

// The kernel's possible CPUs, and the stride of one CPU's value in a
// per-CPU map lookup.
int possible_cpus();
std::size_t percpu_stride(std::size_t value_size);

}  // namespace mixlb
