// When a leave may remove the data path: quiet long enough, or the deadline.
#include <doctest/doctest.h>

#include "leave_wait.h"

namespace mixlb {

using namespace std::chrono_literals;
using Verdict = LeaveWait::Verdict;

TEST_SUITE("leave") {
  TEST_CASE("a leave waits for the last connection and the last VIP packet, then 2 s of quiet") {
    const auto t0 = LeaveWait::Clock::now();
    LeaveWait wait(t0, 30s);
    CHECK(wait.sample(t0, 3, 100) == Verdict::kWait);
    CHECK(wait.state() == "3 connection(s) on VIPs, last VIP packet 0.0 s ago");
    CHECK(wait.sample(t0 + 1s, 1, 150) == Verdict::kWait);
    // The connections ended, but packets still arrive (the router still sends).
    CHECK(wait.sample(t0 + 2s, 0, 170) == Verdict::kWait);
    CHECK(wait.sample(t0 + 3s, 0, 170) == Verdict::kWait);
    CHECK(wait.state() == "0 connection(s) on VIPs, last VIP packet 1.0 s ago");
    CHECK(wait.sample(t0 + 4s, 0, 170) == Verdict::kQuiet);
  }

  TEST_CASE("a connection, or not knowing, keeps it waiting until the deadline") {
    const auto t0 = LeaveWait::Clock::now();
    LeaveWait wait(t0, 5s);
    CHECK(wait.sample(t0 + 1s, 1, 0) == Verdict::kWait);
    CHECK(wait.sample(t0 + 4s, std::nullopt, 0) == Verdict::kWait);
    CHECK(wait.state() == "? connection(s) on VIPs, last VIP packet 4.0 s ago");
    CHECK(wait.sample(t0 + 5s, 1, 0) == Verdict::kTimedOut);
  }

  TEST_CASE("an idle node is quiet after the quiet time, even with a zero timeout") {
    const auto t0 = LeaveWait::Clock::now();
    LeaveWait quiet(t0, 30s, 2s);
    CHECK(quiet.sample(t0, 0, 7) == Verdict::kWait);
    CHECK(quiet.sample(t0 + 2s, 0, 7) == Verdict::kQuiet);
    LeaveWait now(t0, 0s, 2s);
    CHECK(now.sample(t0, 0, 7) == Verdict::kTimedOut);
  }
}

}  // namespace mixlb
