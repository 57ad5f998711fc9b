#include "kernel/abi.h"

namespace mixlb {

// Adding a reason to the enum without a name here fails the build: the array
// size follows the enum, and every element must be a non-empty name (checked
// by test/sidecar/kernel/test_abi.cc together with the enum's order).
const std::array<std::string_view, MIXLB_DROP__MAX> kDropReasonNames = {
    "none",                // MIXLB_DROP_NONE
    "no_backend",          // MIXLB_DROP_NO_BACKEND
    "unknown_node",        // MIXLB_DROP_UNKNOWN_NODE
    "table_lookup",        // MIXLB_DROP_TABLE_LOOKUP
    "fib_no_neigh",        // MIXLB_DROP_FIB_NO_NEIGH
    "fib_fwd_disabled",    // MIXLB_DROP_FIB_FWD_DISABLED
    "fib_frag_needed",     // MIXLB_DROP_FIB_FRAG_NEEDED
    "fib_other",           // MIXLB_DROP_FIB_OTHER
    "redirect",            // MIXLB_DROP_REDIRECT
};

const std::array<std::string_view, MIXLB_CNT__MAX> kCounterNames = {
    "ct_hit",          // MIXLB_CNT_CT_HIT
    "ct_miss",         // MIXLB_CNT_CT_MISS
    "ct_insert",       // MIXLB_CNT_CT_INSERT
    "ct_insert_fail",  // MIXLB_CNT_CT_INSERT_FAIL
    "ct_non_syn_miss", // MIXLB_CNT_CT_NON_SYN_MISS
    "icmp_error",      // MIXLB_CNT_ICMP_ERROR
    "from_peer",       // MIXLB_CNT_FROM_PEER
};

std::string fib_result_name(unsigned code) {
  // The kernel's BPF_FIB_LKUP_RET_* codes, in order.
  static constexpr std::array<std::string_view, 10> kNames = {
      "success",     "blackhole",    "unreachable", "prohibit", "not_fwded",
      "fwd_disabled", "unsupp_lwt", "no_neigh",    "frag_needed", "no_src_addr"};
  if (code < kNames.size()) return std::string(kNames[code]);
  return "code_" + std::to_string(code);
}

}  // namespace mixlb
