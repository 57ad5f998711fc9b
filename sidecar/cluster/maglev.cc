// The Maglev table builder: each slot goes to the virtual backend whose
// permutation reaches it at the earliest position (see maglev.h for why this
// rule rather than the paper's round-robin fill).
//
// The work is one pass per virtual backend over its whole permutation,
// keeping, per slot, the best position seen so far. Virtual backends are
// visited in tie-break order (tie hash, then name) and a slot changes hands
// only on a strictly earlier position, so on equal positions the backend
// visited first keeps the slot and no per-slot tie logic is needed in the
// inner loop. The only allocations are the table itself, one position array
// and the list of virtual backends.
#include "cluster/maglev.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <set>
#include <stdexcept>
#include <string_view>

namespace mixlb {
namespace {

// FNV-1a, 64 bits, with the offset basis xor-ed with a seed. Plain FNV-1a
// mixes its low bits poorly, so its result always goes through mix64.
constexpr std::uint64_t kFnvOffsetBasis = 14695981039346656037ull;
constexpr std::uint64_t kFnvPrime = 1099511628211ull;

constexpr std::uint64_t fnv1a64(std::string_view text, std::uint64_t seed) {
  std::uint64_t h = kFnvOffsetBasis ^ seed;
  for (unsigned char c : text) {
    h ^= c;
    h *= kFnvPrime;
  }
  return h;
}

// The SplitMix64 finaliser (Steele, Lea, Flood 2014): a bijection on 64-bit
// words with full avalanche.
constexpr std::uint64_t mix64(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

// One seed per use, so offset, skip and tie order are independent functions
// of the name. Changing any of these reshuffles every table in the cluster;
// the known-answer test in test/sidecar/cluster/test_maglev.cc guards them.
constexpr std::uint64_t kOffsetSeed = 0x6d61676c65762d6full;  // "maglev-o"
constexpr std::uint64_t kSkipSeed = 0x6d61676c65762d73ull;    // "maglev-s"
constexpr std::uint64_t kTieSeed = 0x6d61676c65762d74ull;     // "maglev-t"

constexpr std::uint64_t name_hash(std::string_view name, std::uint64_t seed) {
  return mix64(fnv1a64(name, seed));
}

struct VirtualBackend {
  std::string name;
  std::uint64_t tie = 0;
  std::uint32_t node_id = 0;
};

}  // namespace

bool is_prime(std::uint32_t n) {
  if (n < 2) return false;
  if (n % 2 == 0) return n == 2;
  for (std::uint64_t d = 3; d * d <= n; d += 2) {
    if (n % d == 0) return false;
  }
  return true;
}

MaglevPermutation maglev_permutation(std::string_view virtual_name, std::uint32_t table_size) {
  if (table_size < 3) throw std::invalid_argument("Maglev table size must be at least 3");
  MaglevPermutation p;
  p.offset = static_cast<std::uint32_t>(name_hash(virtual_name, kOffsetSeed) % table_size);
  p.skip = static_cast<std::uint32_t>(name_hash(virtual_name, kSkipSeed) % (table_size - 1) + 1);
  return p;
}

std::vector<std::uint32_t> build_maglev_table(std::span<const MaglevBackend> backends,
                                              std::uint32_t table_size) {
  if (table_size < 3 || !is_prime(table_size)) {
    throw std::invalid_argument(
        fmt::format("Maglev table size {} is not a prime of at least 3", table_size));
  }

  std::set<std::string_view> names;
  std::vector<VirtualBackend> virtuals;
  for (const MaglevBackend& b : backends) {
    if (!names.insert(b.name).second) {
      throw std::invalid_argument(fmt::format("Maglev backend '{}' is listed twice", b.name));
    }
    if (b.weight > kMaxMaglevWeight) {
      throw std::invalid_argument(
          fmt::format("Maglev backend '{}' has weight {}, above the maximum {}", b.name, b.weight,
                      kMaxMaglevWeight));
    }
    if (b.node_id == 0) {
      throw std::invalid_argument(
          fmt::format("Maglev backend '{}' has node id 0, which marks an empty slot", b.name));
    }
    for (std::uint32_t i = 0; i < b.weight; ++i) {
      VirtualBackend v;
      v.name = fmt::format("{}#{}", b.name, i);
      v.tie = name_hash(v.name, kTieSeed);
      v.node_id = b.node_id;
      virtuals.push_back(std::move(v));
    }
  }
  // Virtual names are unique: the part before the last '#' is the backend
  // name and those are unique, so this order is total.
  std::sort(virtuals.begin(), virtuals.end(), [](const VirtualBackend& a, const VirtualBackend& b) {
    if (a.tie != b.tie) return a.tie < b.tie;
    return a.name < b.name;
  });

  std::vector<std::uint32_t> table(table_size, 0);
  std::vector<std::uint32_t> best(table_size, std::numeric_limits<std::uint32_t>::max());
  const std::uint32_t m = table_size;
  for (const VirtualBackend& v : virtuals) {
    const MaglevPermutation p = maglev_permutation(v.name, m);
    const std::uint32_t node = v.node_id;
    // 64-bit so that c + skip cannot wrap for table sizes near 2^32.
    std::uint64_t c = p.offset;
    for (std::uint32_t pos = 0; pos < m; ++pos) {
      if (pos < best[c]) {
        best[c] = pos;
        table[c] = node;
      }
      c += p.skip;
      if (c >= m) c -= m;
    }
  }
  return table;
}

}  // namespace mixlb
