// Lifeguard's arithmetic and the size-scaled formulas of the configuration,
// checked against the numbers memberlist produces for the same inputs.
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
  // push-pull: linear in n beyond push_pull_scale_nodes
  CHECK(push_pull_period(c, 10) == c.push_pull_interval);
  CHECK(push_pull_period(c, 64) == 2 * c.push_pull_interval);
  CHECK(push_pull_period(c, 1000) == 31 * c.push_pull_interval);
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
