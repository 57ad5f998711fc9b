// Lifeguard's arithmetic and the size-scaled formulas of the configuration,
// checked against the numbers memberlist produces for the same inputs; the
// push-pull period, where mixlb scales differently, against its own.
#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it
#include <stdexcept>

#include "config.h"
#include "lifeguard.h"

namespace mixlb::gossip {
namespace {

TEST_CASE("awareness stays within [0, max - 1] and scales durations") {
  Awareness a(8);
  CHECK(a.scale(1s) == 1s);
  a.apply(3);
  CHECK(a.score() == 3);
  CHECK(a.scale(1s) == 4s);
  a.apply(100);
  CHECK(a.score() == 7);
  a.apply(-100);
  CHECK(a.score() == 0);
  Awareness off(1);
  off.apply(5);
  CHECK(off.score() == 0);
}

TEST_CASE("suspicion starts at max and reaches min after k independent confirmations") {
  const TimePoint start{};
  Suspicion s("node-1", 3, 2s, 30s, start);
  CHECK(s.timeout() == 30s);
  CHECK_FALSE(s.confirm("node-1"));  // the first accuser does not count again
  CHECK(s.confirm("node-2"));
  // 30 - 28 * log(2)/log(4) = 16 s
  CHECK(s.timeout() == 16s);
  CHECK_FALSE(s.confirm("node-2"));
  CHECK(s.confirm("node-3"));
  CHECK(s.confirm("node-4"));
  CHECK(s.timeout() == 2s);
  CHECK(s.deadline() == start + 2s);
  CHECK_FALSE(s.confirm("node-5"));  // beyond k: nothing more to gain
  CHECK(s.confirmations() == 3);
}

TEST_CASE("with no confirmations expected, suspicion is the minimum at once") {
  Suspicion s("node-1", 0, 5s, 30s, TimePoint{});
  CHECK(s.timeout() == 5s);
  CHECK_FALSE(s.confirm("node-2"));
}

TEST_CASE("size-scaled formulas") {
  Config c;
  // λ · ceil(log10(n + 1)), λ = 4
  CHECK(retransmit_limit(c, 1) == 4);
  CHECK(retransmit_limit(c, 9) == 4);
  CHECK(retransmit_limit(c, 10) == 8);
  CHECK(retransmit_limit(c, 1000) == 16);
  // suspicion_mult · max(1, log10 n) · probe interval
  CHECK(suspicion_min_timeout(c, 5) == 3s);
  CHECK(suspicion_min_timeout(c, 100) == 6s);
  CHECK(suspicion_min_timeout(c, 1000) == 9s);
  c.suspicion_mult = 4;  // memberlist's value
  CHECK(suspicion_min_timeout(c, 1000) == 12s);
}

TEST_CASE(
    "the push-pull period: flat up to push_pull_scale_nodes, then in proportion, without steps") {
  Config c;  // 30 s, scaled past 32 members
  CHECK(push_pull_period(c, 0) == 30s);
  CHECK(push_pull_period(c, 10) == 30s);
  CHECK(push_pull_period(c, 32) == 30s);
  CHECK(push_pull_period(c, 33) == 30937500us);
  CHECK(push_pull_period(c, 40) == 37500ms);
  CHECK(push_pull_period(c, 63) == 59062500us);
  CHECK(push_pull_period(c, 64) == 60s);
  CHECK(push_pull_period(c, 100) == 93750ms);
  CHECK(push_pull_period(c, 1000) == 937500ms);
  // From n to n + 1 the period never falls, grows past 32 members, and never
  // by more than one member's share of the interval: no step anywhere.
  const Duration share = c.push_pull_interval / 32;
  std::size_t bad = 0;
  for (std::size_t n = 1; n <= 5000 && bad == 0; ++n) {
    const Duration before = push_pull_period(c, n - 1);
    const Duration after = push_pull_period(c, n);
    const bool grows = n > 32 ? after > before : after == before;
    if (!grows || after - before > share) bad = n;
  }
  CHECK(bad == 0);
}

TEST_CASE("configuration validation names the field") {
  Config c;
  c.name = "node-1";
  c.address = Address::v4(10, 0, 0, 1, 7946);
  CHECK_NOTHROW(validate(c));
  Config bad = c;
  bad.probe_timeout = bad.probe_interval;
  CHECK_THROWS_WITH_AS(
      validate(bad),
      "gossip config: probe_timeout must be positive and shorter than probe_interval",
      std::invalid_argument);
  bad = c;
  bad.name.clear();
  CHECK_THROWS_AS(validate(bad), std::invalid_argument);
  bad = c;
  bad.max_event_payload = 2000;
  CHECK_THROWS_WITH_AS(
      validate(bad),
      "gossip config: max_event_payload does not fit the user-event share of a packet",
      std::invalid_argument);
  bad = c;
  bad.metadata = Bytes(c.max_metadata_size + 1, 0);
  CHECK_THROWS_AS(validate(bad), std::invalid_argument);
  bad = c;
  bad.key_request_timeout = Duration::zero();
  CHECK_THROWS_WITH_AS(validate(bad), "gossip config: key_request_timeout must be positive",
                       std::invalid_argument);
  bad = c;
  bad.key_request_retry = -1s;
  CHECK_THROWS_WITH_AS(validate(bad), "gossip config: key_request_retry must be positive",
                       std::invalid_argument);
}

}  // namespace
}  // namespace mixlb::gossip
