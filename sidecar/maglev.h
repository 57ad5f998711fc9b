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
//   - shares stay close to 1/N (measured in test/ and the benchmark).
// A weight w > 1 enters as w virtual backends ("name#0".."name#w-1"), so a
// backend's share is proportional to its weight and changing a weight moves
// only that backend's slots. Weight 0 leaves the backend out (drain).
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace mixlb {

struct MaglevBackend {
  std::string name;
  std::uint32_t node_id = 0;  // value written into the table's slots
  std::uint32_t weight = 1;
};

constexpr std::uint32_t kMaxMaglevWeight = 100;

// Returns `table_size` node ids; with no backend of non-zero weight every slot
// is 0 (MIXLB_NODE_NONE). table_size must be a prime > 2 (throws
// std::invalid_argument otherwise, and for duplicate names or weights above
// kMaxMaglevWeight).
std::vector<std::uint32_t> build_maglev_table(std::span<const MaglevBackend> backends,
                                              std::uint32_t table_size);

bool is_prime(std::uint32_t n);

}  // namespace mixlb
