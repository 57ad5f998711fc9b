// The metric figures against the real program and maps: read_datapath()
// after a packet went through the program, and the connection-table census
// of a pinned table — its states, its batches (a batch of one forces the
// kernel's "bucket larger than the batch" answer), and its count checked
// against an independent walk with bpf_map_get_next_key.
// clang-format off
// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>
// clang-format on
#include <algorithm>

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <time.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cluster/cluster_sync.h"
#include "cluster/node_id.h"
#include "common/log_failure.h"
#include "kernel/bpf_test_run.h"
#include "kernel/bpffs.h"
#include "kernel/datapath.h"
#include "metrics/collect.h"
#include "metrics/conntrack_census.h"
#include "netns_fixture.h"
#include "packet.h"
#include "pin_dir.h"

namespace mixlb::metrics {
namespace {

Member member(const char* name, const char* address, std::uint32_t weight, bool self) {
  return Member{name, node_id_for(name), *Address::parse(address), weight, self};
}

VipEntry vip_entry(const char* address, std::uint16_t port,
                   std::optional<std::vector<std::string>> serving = std::nullopt) {
  VipEntry v;
  v.key = make_vip_key(*Address::parse(address), port, 6);
  v.label = vip_label(v.key);
  v.serving = std::move(serving);
  return v;
}

using test::PinDir;

mixlb_flow_key flow(std::uint32_t n, std::uint8_t proto = 6) {
  mixlb_flow_key k{};
  k.src[0] = htonl(0xc6120000u + n);  // 198.18.0.0/15
  k.dst[0] = htonl(0x0a640001u);
  k.sport = htons(static_cast<std::uint16_t>(1024 + n % 60000));
  k.dport = htons(80);
  k.proto = proto;
  k.family = MIXLB_AF_INET;
  return k;
}

std::size_t walk_count(int fd) {
  std::size_t n = 0;
  mixlb_flow_key key{}, next{};
  const void* at = nullptr;
  while (bpf_map_get_next_key(fd, at, &next) == 0) {
    ++n;
    key = next;
    at = &key;
  }
  return n;
}

}  // namespace

TEST_SUITE("metrics-datapath" * doctest::skip(cannot_run())) {

TEST_CASE("read_datapath: a VIP's rows after a packet, with weights and the node it went to") {
  const auto& net = test_net();
  DatapathSettings settings = small_test_settings(node_id_for("mix1"), 13);
  auto prog = load_test_program(settings);
  ClusterSync sync(prog->maps(), settings.max_vips);
  const std::vector<Member> members{member("mix1", "10.0.0.1", 1, true),
                                    member("mix2", "10.0.0.2", 2, false)};
  const std::vector<VipEntry> vips{vip_entry("10.100.0.1", 80),
                                   vip_entry("10.100.0.1", 443, std::vector<std::string>{"mix1"})};
  REQUIRE(sync.apply(members, vips).has_value());
  std::vector<PeerState> peers;
  for (const auto& m : members) peers.push_back(PeerState{m, std::nullopt, "self", false, false});

  test::Frame frame;
  frame.daddr = test::ip4("10.100.0.1");
  frame.dport = 80;
  frame.tcp_flags = test::kSyn;
  const auto run = xdp_test_run(prog->prog_fd(), frame.build(), net.dp0);
  REQUIRE_MESSAGE(run.has_value(), (run ? "" : run.error().message()));

  const auto figures = read_datapath(prog->maps(), sync, vips, peers);
  REQUIRE_MESSAGE(figures.has_value(), (figures ? "" : figures.error().message()));
  CHECK(figures->global.events[MIXLB_CNT_CT_MISS] == 1);
  CHECK(figures->global.events[MIXLB_CNT_CT_INSERT] == 0);  // a SYN waits in the half-open table
  CHECK(figures->table_publications == sync.publications());
  CHECK(figures->node_names.at(node_id_for("mix2")) == "mix2");
  REQUIRE(figures->vips.size() == 2);

  const auto& http = figures->vips[0];
  CHECK(http.vip == "10.100.0.1:80/tcp");
  CHECK(http.vip_id == sync.vip_id(vips[0].key));
  CHECK(http.backends == 2);
  CHECK(http.counters.local_pkts + http.counters.fwd_pkts == 1);
  REQUIRE(http.nodes.size() == 2);
  CHECK(http.nodes[0].name == "mix1");
  CHECK(http.nodes[0].self);
  CHECK(http.nodes[0].weight == 1);
  CHECK(http.nodes[1].weight == 2);
  // The packet is in the row of the node it went to, and only there.
  const bool local = http.counters.local_pkts == 1;
  CHECK(http.nodes[0].counters.pkts == (local ? 1u : 0u));
  CHECK(http.nodes[1].counters.pkts == (local ? 0u : 1u));
  CHECK(http.nodes[local ? 0 : 1].counters.bytes == (local ? http.counters.local_bytes
                                                           : http.counters.fwd_bytes));

  const auto& https = figures->vips[1];
  CHECK(https.backends == 1);
  CHECK(https.nodes[1].weight == 0);  // mix2 does not serve it
  CHECK(https.counters.local_pkts + https.counters.fwd_pkts == 0);

  const std::string text = render_metrics(MetricsFigures{.datapath = *figures});
  CHECK(text.find(std::string("mixlb_vip_packets_total{vip=\"10.100.0.1:80/tcp\",path=\"") +
                  (local ? "local" : "forwarded") + "\"} 1\n") != std::string::npos);
}

TEST_CASE("census of the pinned connection table: entries, capacity, flows by VIP, node, state") {
  PinDir pins;
  DatapathSettings settings = small_test_settings(node_id_for("mix1"), 13);
  settings.pin_dir = pins.path + "/mix1";
  auto prog = load_test_program(settings);
  auto fd = open_pinned_conntrack(settings.pin_dir);
  REQUIRE_MESSAGE(fd.has_value(), (fd ? "" : fd.error().message()));

  const std::uint64_t now = coarse_now_ns();
  auto value = [](std::uint16_t vip, std::uint32_t node, std::uint64_t seen, std::uint32_t flags) {
    mixlb_ct_value v{};
    v.vip_id = vip;
    v.node_id = node;
    v.last_seen_ns = seen;
    v.flags = flags;
    return v;
  };
  auto& maps = prog->maps();
  std::uint32_t n = 0;
  for (int i = 0; i < 5; ++i)  // active: seen just now
    REQUIRE(maps.conntrack_insert(flow(n++), value(0, 11, now, MIXLB_CT_SEEN_SYN)).has_value());
  for (int i = 0; i < 3; ++i)  // closing: the client sent FIN
    REQUIRE(maps.conntrack_insert(flow(n++), value(0, 12, now, MIXLB_CT_SEEN_FIN)).has_value());
  // Idle: ten minutes without a packet, or as long as the clock (which
  // starts at boot) allows, past the 60 s active window anyway.
  REQUIRE(now > 61'000'000'000ull);
  const std::uint64_t idle_since = now - std::min<std::uint64_t>(600'000'000'000ull, now - 1);
  for (int i = 0; i < 2; ++i)
    REQUIRE(maps.conntrack_insert(flow(n++, 17), value(1, 12, idle_since, 0)).has_value());

  auto census = take_conntrack_census(fd->get());
  REQUIRE_MESSAGE(census.has_value(), (census ? "" : census.error().message()));
  CHECK(census->entries == 10);
  CHECK(census->capacity == settings.conntrack_entries);
  using Key = ConntrackCensus::Key;
  CHECK(census->flows == std::map<Key, std::size_t>{{{0, 11, FlowState::kActive}, 5},
                                                    {{0, 12, FlowState::kClosing}, 3},
                                                    {{1, 12, FlowState::kIdle}, 2}});
  CHECK(census->took.count() > 0);
}

TEST_CASE("census batches: any batch size counts every entry once, as get_next_key does") {
  // A table of our own, shaped like the data path's, filled past its
  // buckets' average so that some buckets hold several entries.
  const int fd = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, "census_test", sizeof(mixlb_flow_key),
                                sizeof(mixlb_ct_value), 4096, nullptr);
  REQUIRE(fd >= 0);
  const UniqueFd owner(fd);
  const mixlb_ct_value v{};
  for (std::uint32_t i = 0; i < 3000; ++i) {
    const auto key = flow(i);
    REQUIRE(bpf_map_update_elem(fd, &key, &v, BPF_ANY) == 0);
  }
  const std::size_t expected = walk_count(fd);
  CHECK(expected > 2000);  // an LRU may have evicted a few, never most
  for (const std::uint32_t batch : {1u, 7u, 4096u}) {
    CAPTURE(batch);
    ConntrackCensusOptions options;
    options.batch = batch;
    const auto census = take_conntrack_census(fd, options);
    REQUIRE_MESSAGE(census.has_value(), (census ? "" : census.error().message()));
    CHECK(census->entries == expected);
    CHECK(census->capacity == 4096);
  }
}

TEST_CASE("the census taker hands each census back on the caller's thread, scrape after scrape") {
  const int fd = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, "census_taker", sizeof(mixlb_flow_key),
                                sizeof(mixlb_ct_value), 1024, nullptr);
  REQUIRE(fd >= 0);
  const mixlb_ct_value v{};
  for (std::uint32_t i = 0; i < 100; ++i) {
    const auto key = flow(i);
    REQUIRE(bpf_map_update_elem(fd, &key, &v, BPF_ANY) == 0);
  }
  ConntrackWalker taker{UniqueFd(fd)};
  boost::asio::io_context io;
  std::optional<DpResult<ConntrackCensus>> result;
  bool resumed_here = false;
  // Many in a row, as scrapes come: each finds the table (and its fd) as
  // the first did. (An earlier take() released the table once per census
  // and lost it after the first.)
  int whole = 0;
  boost::asio::co_spawn(
      io,
      [&]() -> boost::asio::awaitable<void> {
        const auto caller = std::this_thread::get_id();
        result = co_await taker.take();
        resumed_here = std::this_thread::get_id() == caller;
        for (int i = 0; i < 50; ++i) {
          const auto again = co_await taker.take();
          whole += again && again->entries == 100;
        }
      },
      log_failure("census taker test"));
  io.run_for(std::chrono::seconds(10));
  REQUIRE(result.has_value());
  REQUIRE_MESSAGE(result->has_value(), (*result ? "" : (*result).error().message()));
  CHECK((**result).entries == 100);
  CHECK((**result).capacity == 1024);
  CHECK(resumed_here);
  CHECK(whole == 50);
}

TEST_CASE("the census refuses a map that is not a connection table, and names a missing pin") {
  PinDir pins;
  std::filesystem::create_directories(pins.path + "/other");
  const int fd = bpf_map_create(BPF_MAP_TYPE_HASH, "not_ct", sizeof(mixlb_flow_key),
                                sizeof(std::uint64_t), 16, nullptr);
  REQUIRE(fd >= 0);
  const UniqueFd owner(fd);
  REQUIRE(bpf_obj_pin(fd, (pins.path + "/other/mixlb_ct").c_str()) == 0);
  const auto wrong = open_pinned_conntrack(pins.path + "/other");
  REQUIRE_FALSE(wrong.has_value());
  CHECK(wrong.error().message().find("is not a connection table") != std::string::npos);
  CHECK_FALSE(take_conntrack_census(fd).has_value());

  const auto missing = open_pinned_conntrack(pins.path + "/nothing");
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().message().find(pins.path + "/nothing/mixlb_ct") != std::string::npos);
}

}  // TEST_SUITE

}  // namespace mixlb::metrics
