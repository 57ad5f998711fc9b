#pragma once
// Node ids are stable across the cluster because they are derived from the
// node's name: every node computes the same id for the same peer without
// coordination, and the Maglev tables can hold ids directly. 0 is reserved
// (MIXLB_NODE_NONE), so a hash of 0 is mapped to 1. Collisions are detected
// where the member set is assembled (config validation, membership).
#include <cstdint>
#include <string_view>

namespace mixlb {

constexpr std::uint32_t node_id_for(std::string_view name) {
  std::uint32_t h = 2166136261u;  // FNV-1a, 32 bits
  for (unsigned char c : name) {
    h ^= c;
    h *= 16777619u;
  }
  return h == 0 ? 1 : h;
}

}  // namespace mixlb
