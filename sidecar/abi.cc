#include "abi.h"

namespace mixlb {

// Adding a reason to the enum without a name here fails the build: the array
// size follows the enum, and every element must be a non-empty name (checked
// by test/sidecar/test_abi.cc together with the enum's order).
const std::array<std::string_view, MIXLB_DROP__MAX> kDropReasonNames = {
    "none",                // MIXLB_DROP_NONE
    "no_backend",          // MIXLB_DROP_NO_BACKEND
    "unknown_node",        // MIXLB_DROP_UNKNOWN_NODE
    "table_lookup",        // MIXLB_DROP_TABLE_LOOKUP
    "fib_no_neigh",        // MIXLB_DROP_FIB_NO_NEIGH
    "fib_fwd_disabled",    // MIXLB_DROP_FIB_FWD_DISABLED
    "fib_other",           // MIXLB_DROP_FIB_OTHER
    "redirect",            // MIXLB_DROP_REDIRECT
};

const std::array<std::string_view, MIXLB_CNT__MAX> kCounterNames = {
    "ct_hit",          // MIXLB_CNT_CT_HIT
    "ct_miss",         // MIXLB_CNT_CT_MISS
    "ct_insert",       // MIXLB_CNT_CT_INSERT
    "ct_insert_fail",  // MIXLB_CNT_CT_INSERT_FAIL
};

}  // namespace mixlb
