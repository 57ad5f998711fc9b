#pragma once
// The C++ face of bpf/mixlb_abi.h: the same structs (one definition, included
// from the BPF side's header), their sizes pinned with static_asserts so a
// layout change on either side fails the build, and names for the enums so
// logs, status output and tests speak the same words as the data path.
#include <array>
#include <cstddef>
#include <string>
#include <string_view>

#include "mixlb_abi.h"

namespace mixlb {

static_assert(sizeof(mixlb_vip_key) == 20);
static_assert(sizeof(mixlb_vip_value) == 16);
static_assert(sizeof(mixlb_close_event) == 56);
static_assert(sizeof(mixlb_flow_key) == 40);
static_assert(sizeof(mixlb_ct_value) == 24);
static_assert(sizeof(mixlb_half_open) == 72);
static_assert(sizeof(mixlb_filter) == 512);
static_assert(sizeof(mixlb_fib_cache) == 40);
static_assert(sizeof(mixlb_clock) == 16);
static_assert(sizeof(mixlb_ct_cached) == 72);
static_assert(sizeof(mixlb_node) == 24);
static_assert(sizeof(mixlb_backend_stats) == 16);
static_assert(sizeof(mixlb_settings) == 8);
static_assert(sizeof(mixlb_decision) == 24);
static_assert(sizeof(mixlb_mac) == 8);
static_assert(sizeof(mixlb_vip_stats) == 6 * 8 + MIXLB_DROP__MAX * 8);
static_assert(offsetof(mixlb_flow_key, sport) == 32);
static_assert(offsetof(mixlb_vip_key, port) == 16);

// One name per enum mixlb_drop_reason value, in order ("none" for 0).
extern const std::array<std::string_view, MIXLB_DROP__MAX> kDropReasonNames;

// One name per enum mixlb_counter value, in order.
extern const std::array<std::string_view, MIXLB_CNT__MAX> kCounterNames;

// The name of a bpf_fib_lookup return code ("success", "no_neigh", ...), or
// "code_N" for one this build does not know.
std::string fib_result_name(unsigned code);

}  // namespace mixlb
