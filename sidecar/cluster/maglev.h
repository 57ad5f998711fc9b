#pragma once
// Maglev lookup tables (Eisenbud et al., NSDI'16) with a stable assignment.
//
// Each backend derives its Maglev permutation of the M slots from its name
// (offset and skip from two independent hashes). The paper fills the table
// greedily, backends taking turns; that is balanced to one slot but not a
// pure function of "who owns what": removing one backend lets the others'
// turns shift, so a few of *their* slots move too. mixlb instead gives each
// slot to the backend whose permutation reaches it first (earliest turn),
// ties broken by a name hash, then the name. That is a per-slot preference
// order, so:
//   - the table depends only on the member set, never on listing order;
//   - removing a backend moves only the slots it owned; adding one only takes
//     slots for itself;
//   - shares stay close to 1/N (measured in test/sidecar/cluster/test_maglev.cc).
// A backend of weight w enters as w virtual backends "name#0".."name#w-1"
// that all write its node id, so its share is proportional to its weight.
// Weight 1 is "name#0" too, not the bare name: raising a weight then only
// adds virtual backends (the backend only gains slots) and lowering one only
// removes them (it only gives slots up), and the virtual names of different
// backends can never coincide. Weight 0 leaves the backend out (drain).
//
// The hashes are spelled out in maglev.cc (FNV-1a 64 finished by the
// SplitMix64 mixer, one seed per use) and are part of the cluster protocol:
// every node must build byte-identical tables from the same member set, so
// they never depend on the platform or the standard library.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mixlb {

struct MaglevBackend {
  std::string name;
  std::uint32_t node_id = 0;  // value written into the table's slots; never 0
  std::uint32_t weight = 1;
};

constexpr std::uint32_t kMaxMaglevWeight = 100;

// A virtual backend's walk over the table: slots offset, offset + skip,
// offset + 2 * skip, ... (mod table_size). skip is in 1..table_size-1, so for
// a prime table_size the walk visits every slot exactly once.
struct MaglevPermutation {
  std::uint32_t offset = 0;
  std::uint32_t skip = 0;
};

// The permutation of one virtual backend name (already suffixed, "mix1#0").
// Exposed for the known-answer tests and for tools that explain a table.
MaglevPermutation maglev_permutation(std::string_view virtual_name, std::uint32_t table_size);

// Returns `table_size` node ids; with no backend of non-zero weight every slot
// is 0 (MIXLB_NODE_NONE). Throws std::invalid_argument when table_size is not
// a prime >= 3, for duplicate names, for a node id of 0 and for weights above
// kMaxMaglevWeight. Runs in O(table_size * sum of weights) time.
std::vector<std::uint32_t> build_maglev_table(std::span<const MaglevBackend> backends,
                                              std::uint32_t table_size);

bool is_prime(std::uint32_t n);

}  // namespace mixlb
