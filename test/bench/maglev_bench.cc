// Maglev table benchmark: for N backends, how long a 65537-slot table takes
// to build, how far the largest share strays from 1/N, and how many slots of
// *surviving* backends move when one backend is removed — for mixlb's stable
// assignment and, as the baseline measured in the same run, the Maglev
// paper's greedy fill over the same permutations. One JSON object per line.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "cluster/maglev.h"
#include "cluster/node_id.h"

namespace {

using mixlb::MaglevBackend;

// The NSDI'16 population: backends take turns, each taking the next free slot
// of its permutation. Balanced to one slot; not stable under removal.
std::vector<std::uint32_t> paper_fill(const std::vector<MaglevBackend>& backends, std::uint32_t m) {
  std::vector<MaglevBackend> sorted = backends;
  std::sort(sorted.begin(), sorted.end(), [](auto& a, auto& b) { return a.name < b.name; });
  std::vector<mixlb::MaglevPermutation> perms;
  for (const auto& b : sorted) perms.push_back(mixlb::maglev_permutation(b.name + "#0", m));
  std::vector<std::uint32_t> next(sorted.size(), 0), table(m, 0);
  std::uint32_t filled = 0;
  while (true) {
    for (std::size_t i = 0; i < sorted.size(); ++i) {
      std::uint32_t c = static_cast<std::uint32_t>((perms[i].offset + std::uint64_t{next[i]} * perms[i].skip) % m);
      while (table[c] != 0) {
        ++next[i];
        c = static_cast<std::uint32_t>((perms[i].offset + std::uint64_t{next[i]} * perms[i].skip) % m);
      }
      table[c] = sorted[i].node_id;
      ++next[i];
      if (++filled == m) return table;
    }
  }
}

struct Figures {
  double build_ms;
  double worst_deviation;  // max over backends of |share * N - 1|
  std::uint64_t moved_survivors;  // slots of survivors that moved when the last backend left
};

template <typename Build>
Figures measure(const std::vector<MaglevBackend>& backends, std::uint32_t m, Build build) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto table = build(backends, m);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  double worst = 0;
  for (const auto& b : backends) {
    const double share = static_cast<double>(std::count(table.begin(), table.end(), b.node_id)) / m;
    worst = std::max(worst, std::abs(share * backends.size() - 1));
  }
  std::vector<MaglevBackend> fewer(backends.begin(), backends.end() - 1);
  const auto after = build(fewer, m);
  const std::uint32_t gone = backends.back().node_id;
  std::uint64_t moved = 0;
  for (std::uint32_t i = 0; i < m; ++i) moved += table[i] != gone && after[i] != table[i];
  return {ms, worst, moved};
}

}  // namespace

int main() {
  struct Case {
    int n;
    std::uint32_t m;
  };
  // The default table size, then ten times it for large clusters.
  for (const auto [n, m] : {Case{3, 65537}, Case{10, 65537}, Case{100, 65537}, Case{1000, 65537},
                            Case{100, 655373}, Case{1000, 655373}}) {
    std::vector<MaglevBackend> backends;
    for (int i = 1; i <= n; ++i) {
      const std::string name = "mix" + std::to_string(i);
      backends.push_back({name, mixlb::node_id_for(name), 1});
    }
    const auto stable = measure(backends, m, [](const std::vector<MaglevBackend>& b, std::uint32_t size) {
      return mixlb::build_maglev_table(b, size);
    });
    const auto paper = measure(backends, m, paper_fill);
    std::printf(
        "{\"bench\":\"maglev\",\"nodes\":%d,\"table_size\":%u,\"build_ms\":%.3f,"
        "\"baseline_build_ms\":%.3f,\"ratio\":%.2f,\"worst_share_deviation\":%.5f,"
        "\"baseline_worst_share_deviation\":%.5f,\"moved_survivor_slots_on_remove\":%llu,"
        "\"baseline_moved_survivor_slots_on_remove\":%llu}\n",
        n, m, stable.build_ms, paper.build_ms, stable.build_ms / paper.build_ms, stable.worst_deviation,
        paper.worst_deviation, static_cast<unsigned long long>(stable.moved_survivors),
        static_cast<unsigned long long>(paper.moved_survivors));
  }
  return 0;
}
