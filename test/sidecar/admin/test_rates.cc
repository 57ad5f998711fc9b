// `mixlbctl vips`: CounterRates turns two samples of the data path's
// counters into rates, and vips_result builds the command's result from a
// `stats` result and those rates. Samples are taken at made-up times, so
// every rate is exact.
#include <doctest/doctest.h>

#include <chrono>
#include <string>

#include "admin/commands.h"
#include "admin/rates.h"
#include "admin/results.h"

namespace mixlb {
namespace {

using namespace std::chrono_literals;
using Clock = CounterRates::Clock;
using Key = CounterRates::Key;

const Key kTotal{"v", std::string(kVipTotal)};

// A `stats` result at two moments (`later`): a VIP whose table holds this
// node (mix1) and mix2, that still sends pinned flows to mix3 (no longer
// serving) and knows mix4 drained; and a VIP with no table out yet.
StatsResult stats(bool later) {
  StatsResult s;
  s.node = "mix1";
  VipStats a;
  a.vip = "10.100.0.1:80/tcp";
  a.vip_id = 0;
  a.backends = {"mix1", "mix2"};
  a.weights = std::map<std::string, std::uint32_t>{{"mix1", 1}, {"mix2", 3}, {"mix4", 0}};
  const std::uint64_t mix1 = later ? 30 : 10, mix2 = later ? 40 : 15, mix3 = later ? 10 : 5;
  a.counters = VipPackets{mix1,           mix1 * 100,
                          mix2 + mix3,    (mix2 + mix3) * 100,
                          later ? 6u : 4u, later ? 600u : 400u,
                          {{"no_backend", 1}, {"redirect", later ? 3u : 2u}}};
  a.per_node = std::vector<NodePackets>{{"mix1", true, mix1, mix1 * 100},
                                        {"mix2", false, mix2, mix2 * 100},
                                        {"mix3", false, mix3, mix3 * 100},
                                        {"mix4", false, 0, 0}};
  VipStats b;
  b.vip = "[fd00::1]:53/udp";
  b.backends = {"mix2"};
  b.weights = std::map<std::string, std::uint32_t>{{"mix2", 3}};
  s.vips = {a, b};
  return s;
}

TEST_SUITE("admin") {
  TEST_CASE("CounterRates: no rate before two samples, then the rate over the last interval") {
    CounterRates rates;
    const Clock::time_point t0{};
    CHECK_FALSE(rates.interval().has_value());
    CHECK_FALSE(rates.rate(kTotal).has_value());

    rates.record(t0, {{kTotal, {100, 10'000}}});
    CHECK_FALSE(rates.interval().has_value());
    CHECK_FALSE(rates.rate(kTotal).has_value());

    rates.record(t0 + 2s, {{kTotal, {300, 30'000}}});
    CHECK(rates.interval() == Clock::duration(2s));
    auto rate = rates.rate(kTotal);
    REQUIRE(rate.has_value());
    CHECK(rate->pkts_per_s == doctest::Approx(100));
    CHECK(rate->bytes_per_s == doctest::Approx(10'000));

    // Only the last two samples count.
    rates.record(t0 + 2500ms, {{kTotal, {400, 30'500}}});
    CHECK(rates.interval() == Clock::duration(500ms));
    rate = rates.rate(kTotal);
    REQUIRE(rate.has_value());
    CHECK(rate->pkts_per_s == doctest::Approx(200));
    CHECK(rate->bytes_per_s == doctest::Approx(1'000));
  }

  TEST_CASE("CounterRates: a counter that went down, or a key new in the sample, has no rate") {
    CounterRates rates;
    const Clock::time_point t0{};
    const Key peer{"v", "mix2"};
    rates.record(t0, {{kTotal, {100, 10'000}}, {peer, {5, 500}}});
    // The VIP was removed and added again: its counting started over.
    rates.record(t0 + 1s, {{kTotal, {10, 1'000}}, {peer, {6, 400}}, {{"v", "mix3"}, {1, 1}}});
    CHECK(rates.interval().has_value());
    CHECK_FALSE(rates.rate(kTotal).has_value());
    CHECK_FALSE(rates.rate(peer).has_value());  // bytes went down, packets did not
    CHECK_FALSE(rates.rate({"v", "mix3"}).has_value());
    CHECK_FALSE(rates.rate({"w", ""}).has_value());
    // And counts from there on.
    rates.record(t0 + 2s, {{kTotal, {30, 3'000}}});
    REQUIRE(rates.rate(kTotal).has_value());
    CHECK(rates.rate(kTotal)->pkts_per_s == doctest::Approx(20));
  }

  TEST_CASE("CounterRates: two samples at the same moment give no rate") {
    CounterRates rates;
    const Clock::time_point t0{};
    rates.record(t0, {{kTotal, {1, 1}}});
    rates.record(t0, {{kTotal, {2, 2}}});
    CHECK_FALSE(rates.interval().has_value());
    CHECK_FALSE(rates.rate(kTotal).has_value());
  }

  TEST_CASE("rate_sample reads the VIP's balanced total, what peers sent, and each backend") {
    const auto sample = rate_sample(stats(false));
    const std::string vip = "10.100.0.1:80/tcp";
    CHECK(sample.size() == 6);  // the VIP without a table has no counters yet
    CHECK(sample.at({vip, std::string(kVipTotal)}).pkts == 30);
    CHECK(sample.at({vip, std::string(kVipTotal)}).bytes == 3'000);
    CHECK(sample.at({vip, std::string(kFromPeers)}).pkts == 4);
    CHECK(sample.at({vip, std::string(kFromPeers)}).bytes == 400);
    CHECK(sample.at({vip, "mix1"}).pkts == 10);
    CHECK(sample.at({vip, "mix2"}).bytes == 1'500);
    CHECK(sample.at({vip, "mix4"}).pkts == 0);
  }

  TEST_CASE("vips_result: no rates until the daemon has two samples") {
    CounterRates rates;
    rates.record(Clock::time_point{}, rate_sample(stats(false)));
    const VipsResult result = vips_result(stats(false), rates);
    CHECK(result.node == "mix1");
    CHECK_FALSE(result.interval_s.has_value());
    REQUIRE(result.vips.size() == 2);
    CHECK(result.vips[0].pkts == 30);
    CHECK_FALSE(result.vips[0].rate.has_value());
    CHECK_FALSE(result.vips[0].from_peer_rate.has_value());
    for (const auto& backend : result.vips[0].backends) CHECK_FALSE(backend.rate.has_value());
  }

  TEST_CASE("vips_result: per VIP its totals and rates, its backends, and what peers sent") {
    CounterRates rates;
    const Clock::time_point t0{};
    rates.record(t0, rate_sample(stats(false)));
    rates.record(t0 + 1s, rate_sample(stats(true)));
    const VipsResult result = vips_result(stats(true), rates);
    REQUIRE(result.interval_s.has_value());
    CHECK(*result.interval_s == doctest::Approx(1.0));
    REQUIRE(result.vips.size() == 2);

    const VipTraffic& a = result.vips[0];
    CHECK(a.vip == "10.100.0.1:80/tcp");
    CHECK(a.vip_id == 0u);
    CHECK(a.pkts == 80);  // served here and forwarded
    CHECK(a.bytes == 8'000);
    CHECK(a.from_peer_pkts == 6);
    CHECK(a.from_peer_bytes == 600);
    CHECK(a.dropped == 4);
    REQUIRE(a.rate.has_value());
    CHECK(a.rate->pkts_per_s == doctest::Approx(50));
    CHECK(a.rate->bytes_per_s == doctest::Approx(5'000));
    REQUIRE(a.from_peer_rate.has_value());
    CHECK(a.from_peer_rate->pkts_per_s == doctest::Approx(2));

    REQUIRE(a.backends.size() == 4);
    CHECK(a.backends[0].name == "mix1");
    CHECK(a.backends[0].self);
    CHECK(a.backends[0].weight == 1u);
    CHECK(a.backends[0].in_table);
    CHECK(a.backends[0].pkts == 30);
    REQUIRE(a.backends[0].rate.has_value());
    CHECK(a.backends[0].rate->pkts_per_s == doctest::Approx(20));
    CHECK(a.backends[1].name == "mix2");
    CHECK_FALSE(a.backends[1].self);
    CHECK(a.backends[1].weight == 3u);
    CHECK(a.backends[1].rate->bytes_per_s == doctest::Approx(2'500));
    // No longer serving, still sent the flows the connection table pins.
    CHECK(a.backends[2].name == "mix3");
    CHECK_FALSE(a.backends[2].weight.has_value());
    CHECK_FALSE(a.backends[2].in_table);
    CHECK(a.backends[2].rate->pkts_per_s == doctest::Approx(5));
    CHECK(a.backends[3].name == "mix4");
    CHECK(a.backends[3].weight == 0u);
    CHECK_FALSE(a.backends[3].in_table);

    // No table out yet: the backends it will have, nothing counted.
    const VipTraffic& b = result.vips[1];
    CHECK_FALSE(b.vip_id.has_value());
    CHECK(b.pkts == 0);
    CHECK_FALSE(b.rate.has_value());
    REQUIRE(b.backends.size() == 1);
    CHECK(b.backends[0].name == "mix2");
    CHECK(b.backends[0].weight == 3u);
    CHECK(b.backends[0].in_table);
    CHECK_FALSE(b.backends[0].rate.has_value());

    const std::string expected =
        "mixlb node mix1: VIP traffic balanced here, rates over the last 1.0 s\n"
        "  VIP / BACKEND                        WEIGHT  PKTS  BYTES  PKTS/S  BYTES/S  DROPPED\n"
        "  10.100.0.1:80/tcp                              80   8000      50     5000        4\n"
        "    -> mix1 (this node)                     1    30   3000      20     2000\n"
        "    -> mix2                                 3    40   4000      25     2500\n"
        "    -> mix3 (not serving, flows kept)       -    10   1000       5      500\n"
        "    -> mix4 (drained)                       0     0      0       0        0\n"
        "    <- from peers                                 6    600       2      200\n"
        "  [fd00::1]:53/udp                                0      0       -        -        0\n"
        "    -> mix2                                 3     0      0       -        -\n"
        "    <- from peers                                 0      0       -        -\n";
    CHECK(render_result(*find_command("vips"), nlohmann::json(result)) == expected);
  }

  TEST_CASE("vips renders its header before the first rates, and no VIPs") {
    VipsResult empty;
    empty.node = "mix1";
    CHECK(render_result(*find_command("vips"), nlohmann::json(empty)) ==
          "mixlb node mix1: VIP traffic balanced here, no rates yet (the daemon samples every "
          "second)\n  none\n");
  }
}  // TEST_SUITE

}  // namespace
}  // namespace mixlb
