#pragma once
// Rates for `mixlbctl vips`. The data path keeps counters, not rates; a rate
// needs two samples, and a command asked now should not wait a second for
// its second one. So the daemon samples the counters on a timer (once a
// second) into CounterRates, which keeps the last two samples, and a
// command answers with the rate over the last interval.
//
// vips_result() builds the command's result from a `stats` result (the
// counters now) and the rates; rate_sample() is the sample the daemon takes
// from the same `stats` result, so both read the counters one way.
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "admin/results.h"

namespace mixlb {

class CounterRates {
 public:
  using Clock = std::chrono::steady_clock;
  // (VIP label, backend name); the backend is kVipTotal for the VIP's own
  // balanced traffic and kFromPeers for what peers balanced to this node.
  using Key = std::pair<std::string, std::string>;
  struct Counters {
    std::uint64_t pkts = 0;
    std::uint64_t bytes = 0;
  };
  using Sample = std::map<Key, Counters>;

  // Keeps `sample`, taken at `at`, and the one before it.
  void record(Clock::time_point at, Sample sample);

  // The rate of `key` between the last two samples; nullopt before the
  // second sample, for a key missing from either, and for a counter that
  // went down (its VIP was removed and added again: counting started over).
  std::optional<PacketRate> rate(const Key& key) const;
  // The time between the last two samples.
  std::optional<Clock::duration> interval() const;

 private:
  std::optional<std::pair<Clock::time_point, Sample>> previous_, last_;
};

inline constexpr std::string_view kVipTotal = "";
inline constexpr std::string_view kFromPeers = "<from peers>";

// The counters `vips` shows rates of.
CounterRates::Sample rate_sample(const StatsResult& stats);

// `vips`: each VIP of `stats` with its backends and the rates of `rates`.
VipsResult vips_result(const StatsResult& stats, const CounterRates& rates);

}  // namespace mixlb
