#pragma once
// When a leaving node may take its data path away: once it has been quiet
// for a while — no connection of the app on a VIP, no VIP packet counted by
// the data path — or at its deadline. Established connections end when
// their clients are done; VIP packets stop once the router no longer sends
// the node anything (the operator withdrew it) and no peer forwards it
// flows. No I/O: the daemon samples both once in a while and asks.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace mixlb {

class LeaveWait {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Verdict { kWait, kQuiet, kTimedOut };

  LeaveWait(Clock::time_point start, Clock::duration timeout,
            Clock::duration quiet = std::chrono::seconds(2));

  // One sample: the app's connections on VIPs (nullopt when they could not
  // be counted: not quiet), and the data path's VIP packet total.
  Verdict sample(Clock::time_point now, std::optional<std::size_t> connections,
                 std::uint64_t packets);

  // "3 connection(s) on VIPs, last VIP packet 0.4 s ago", as of the last sample.
  std::string state() const;

 private:
  Clock::time_point deadline_;
  Clock::duration quiet_;
  Clock::time_point quiet_since_;
  Clock::time_point last_packet_;
  Clock::time_point last_sample_;
  std::optional<std::uint64_t> packets_;
  std::optional<std::size_t> connections_;
};

}  // namespace mixlb
