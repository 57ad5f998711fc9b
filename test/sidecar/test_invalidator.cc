// The Invalidator between two nodes of the tests' network namespace, each
// with a real program's maps: A at 127.0.0.2 serves flows that B (127.0.0.3)
// forwarded; their closes reach B by the targeted mode, sealed, and B
// deletes what points at A and nothing else. Forged, replayed, stale and
// unknown-sender messages delete nothing.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstring>

#include "netns_fixture.h"
#include "cluster/node_id.h"
#include "invalidator.h"

namespace mixlb {
namespace {

using namespace std::chrono_literals;

const std::uint32_t kA = node_id_for("inv-a");
const std::uint32_t kB = node_id_for("inv-b");
const std::uint32_t kC = node_id_for("inv-c");
constexpr std::uint16_t kPort = 19066;

mixlb_flow_key flow(std::uint16_t client_port) {
  mixlb_flow_key k{};
  ::inet_pton(AF_INET, "192.0.2.10", &k.src[0]);
  ::inet_pton(AF_INET, "10.100.0.1", &k.dst[0]);
  k.sport = htons(client_port);
  k.dport = htons(80);
  k.proto = 6;
  k.family = MIXLB_AF_INET;
  return k;
}

mixlb_node node_at(const char* ip, std::uint32_t slot) {
  mixlb_node n{};
  ::inet_pton(AF_INET, ip, &n.addr[0]);
  n.family = MIXLB_AF_INET;
  n.stats_slot = slot;
  return n;
}

std::uint64_t monotonic_ns() {
  timespec t{};
  ::clock_gettime(CLOCK_MONOTONIC, &t);
  return std::uint64_t(t.tv_sec) * 1000000000 + std::uint64_t(t.tv_nsec);
}

struct Node {
  std::unique_ptr<XdpProgram> program;
  std::unique_ptr<Invalidator> invalidator;
};

Node make_node(boost::asio::io_context& io, std::uint32_t self, const char* ip, const gossip::Key& key,
               InvalidationMode mode = InvalidationMode::kTargeted, Invalidator::GossipSend gossip_send = {},
               bool kernel_apply = true) {
  Node n;
  n.program = load_test_program(small_test_settings(self, 13));
  auto& maps = n.program->maps();
  REQUIRE(maps.set_node(kA, node_at("127.0.0.2", 1)).has_value());
  REQUIRE(maps.set_node(kB, node_at("127.0.0.3", 2)).has_value());
  REQUIRE(maps.set_node(kC, node_at("127.0.0.4", 3)).has_value());
  InvalidatorSettings s;
  s.mode = mode;
  s.self_id = self;
  s.self_address = *Address::parse(ip);
  s.port = kPort;
  s.cluster = "test";
  s.keys = {key};
  s.kernel_apply = kernel_apply;
  n.invalidator = std::make_unique<Invalidator>(io, s, maps, std::move(gossip_send));
  std::string what;
  const auto ec = n.invalidator->start(what);
  REQUIRE_MESSAGE(!ec, what << ": " << ec.message());
  // The in-kernel apply loads wherever the tests run; off when asked.
  REQUIRE(n.invalidator->applies_in_kernel() == kernel_apply);
  return n;
}

void run_until(boost::asio::io_context& io, const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + 3s;
  while (!done() && std::chrono::steady_clock::now() < deadline) io.run_for(10ms);
}

// A serves flows 1..200 that B forwarded, and closes them; B applies the
// invalidations in the kernel, a batch per run, or (kernel_apply false) one
// flow per syscall.
void targeted_round_trip(bool kernel_apply) {
  test_net();
  boost::asio::io_context io;
  const gossip::Key key = gossip::generate_key();
  Node a = make_node(io, kA, "127.0.0.2", key, InvalidationMode::kTargeted, {}, kernel_apply);
  Node b = make_node(io, kB, "127.0.0.3", key, InvalidationMode::kTargeted, {}, kernel_apply);
  auto& b_maps = b.program->maps();
  const mixlb_ct_value to_a{.last_seen_ns = 1, .node_id = kA};
  const mixlb_ct_value to_c{.last_seen_ns = 1, .node_id = kC};
  // B forwarded flows 1..200 to A; flow 300 is B's entry towards C, which
  // A's close of the same 5-tuple must not touch.
  for (std::uint16_t p = 1; p <= 200; ++p) REQUIRE(b_maps.conntrack_insert(flow(p), to_a).has_value());
  REQUIRE(b_maps.conntrack_insert(flow(300), to_c).has_value());

  const std::uint64_t at = monotonic_ns();
  for (std::uint16_t p = 1; p <= 200; ++p)
    a.invalidator->on_close(mixlb_close_event{.flow = flow(p), .at_ns = at, .origin_node = kB});
  a.invalidator->on_close(mixlb_close_event{.flow = flow(300), .at_ns = at, .origin_node = kB});
  // Served and received here: nothing to send.
  a.invalidator->on_close(
      mixlb_close_event{.flow = flow(400), .at_ns = at, .flags = MIXLB_CLOSE_EV_DELETED});
  mixlb_flow_key check = flow(500);  // A's health check of its own VIP
  check.src[0] = check.dst[0];
  a.invalidator->on_close(mixlb_close_event{.flow = check, .at_ns = at});
  run_until(io, [&] { return b.invalidator->counters().received_flows >= 201; });

  const auto& sent = a.invalidator->counters();
  CHECK(sent.closes == 203);
  CHECK(sent.local_only == 2);
  CHECK(sent.sent_flows == 201);
  CHECK(sent.sent_messages == 3);  // 201 IPv4 flows of 14 bytes: three datagrams of 1,400
  const auto& got = b.invalidator->counters();
  CHECK(got.received_messages == 3);
  CHECK(got.applied == 200);
  CHECK(got.unmatched == 1);
  for (std::uint16_t p = 1; p <= 200; ++p) {
    auto e = b_maps.conntrack(flow(p));
    REQUIRE(e.has_value());
    CHECK_FALSE(e->has_value());
  }
  auto kept = b_maps.conntrack(flow(300));
  REQUIRE(kept.has_value());
  CHECK(kept->has_value());
  const LatencySummary l = b.invalidator->latency();
  CHECK(l.samples == 200);
  CHECK(l.p99_us > 0);
}

}  // namespace

TEST_SUITE("invalidator" * doctest::skip(cannot_run())) {
  TEST_CASE("targeted: the forwarding peer deletes the entries that point at the sender, and only those") {
    targeted_round_trip(true);
  }

  TEST_CASE("targeted, one flow per syscall: the same deletions without the in-kernel apply") {
    targeted_round_trip(false);
  }

  TEST_CASE("gossip: a burst of closes goes to the gossip layer at once; events apply in any order, once") {
    test_net();
    boost::asio::io_context io;
    const gossip::Key key = gossip::generate_key();
    std::vector<std::vector<std::uint8_t>> events;
    Node a = make_node(io, kA, "127.0.0.2", key, InvalidationMode::kGossip, [&](std::vector<std::uint8_t> p) {
      events.push_back(std::move(p));
      return std::error_code();
    });
    Node b = make_node(io, kB, "127.0.0.3", key, InvalidationMode::kGossip);
    auto& b_maps = b.program->maps();
    const mixlb_ct_value to_a{.last_seen_ns = 1, .node_id = kA};
    // B holds the entries of every fourth flow (its table is small); the
    // others' invalidations find nothing.
    constexpr std::uint16_t kFlows = 1200;
    for (std::uint16_t p = 4; p <= kFlows; p += 4) REQUIRE(b_maps.conntrack_insert(flow(p), to_a).has_value());
    const std::uint64_t at = monotonic_ns();
    for (std::uint16_t p = 1; p <= kFlows; ++p)
      a.invalidator->on_close(mixlb_close_event{.flow = flow(p), .at_ns = at, .origin_node = kB});
    // One flush, well inside a gossip interval: the gossip layer paces them.
    io.run_for(20ms);
    const auto& sent = a.invalidator->counters();
    CHECK(sent.sent_flows == kFlows);
    CHECK(events.size() == sent.sent_messages);
    CHECK(events.size() == 75);  // 16 flows of 14 bytes to an event of 256 (31 bytes of header)
    for (const auto& e : events) CHECK(e.size() <= 256);
    // The gossip layer seals, opens and deduplicates them, and delivers them
    // in whatever order the epidemic brings: here the last first, 74
    // sequences apart, beyond the UDP modes' window of 64.
    for (auto e = events.rbegin(); e != events.rend(); ++e) b.invalidator->on_gossip_event(*e);
    CHECK(b.invalidator->counters().applied == kFlows / 4);
    CHECK(b.invalidator->counters().unmatched == kFlows - kFlows / 4);
    CHECK(b.invalidator->counters().refused_replayed == 0);
    for (std::uint16_t p = 1; p <= kFlows; ++p) {
      auto e = b_maps.conntrack(flow(p));
      REQUIRE(e.has_value());
      CHECK_FALSE(e->has_value());
    }
    // An event older than the allowed age is refused.
    InvalidationBatch old{.sender = kA, .sequence = 1, .sent_us = unix_now_us() - 31'000'000,
                          .closed_us = unix_now_us() - 31'000'000, .flows = {flow(1)}};
    REQUIRE(b_maps.conntrack_insert(flow(1), to_a).has_value());
    b.invalidator->on_gossip_event(encode_invalidations(old));
    CHECK(b.invalidator->counters().refused_stale == 1);
    auto kept = b_maps.conntrack(flow(1));
    REQUIRE((kept.has_value() && kept->has_value()));
  }

  TEST_CASE("a message under another key, a replay, a stale one and one from an unknown sender delete nothing") {
    test_net();
    boost::asio::io_context io;
    const gossip::Key key = gossip::generate_key();
    Node b = make_node(io, kB, "127.0.0.3", key);
    auto& maps = b.program->maps();
    const mixlb_ct_value to_a{.last_seen_ns = 1, .node_id = kA};
    REQUIRE(maps.conntrack_insert(flow(1), to_a).has_value());

    gossip::Keyring ring("test/invalidate", key);
    gossip::Keyring stranger("test/invalidate", gossip::generate_key());
    gossip::Keyring gossip_ring("test", key);  // the same key, the gossip layer's data
    InvalidationBatch batch{.sender = kA, .sequence = 5000, .sent_us = unix_now_us(), .closed_us = unix_now_us(),
                            .flows = {flow(1)}};
    auto plain = encode_invalidations(batch);
    Invalidator& inv = *b.invalidator;

    inv.on_datagram(stranger.seal(plain));
    inv.on_datagram(gossip_ring.seal(plain));
    inv.on_datagram(plain);  // in the clear
    CHECK(inv.counters().refused_unauthenticated == 3);

    InvalidationBatch unknown = batch;
    unknown.sender = node_id_for("nobody");
    inv.on_datagram(ring.seal(encode_invalidations(unknown)));
    CHECK(inv.counters().refused_unknown_sender == 1);

    InvalidationBatch stale = batch;
    stale.sent_us -= 31'000'000;
    inv.on_datagram(ring.seal(encode_invalidations(stale)));
    CHECK(inv.counters().refused_stale == 1);

    std::vector<std::uint8_t> garbage{0x49, 1, 2};
    inv.on_datagram(ring.seal(garbage));
    CHECK(inv.counters().refused_malformed == 1);

    auto e = maps.conntrack(flow(1));
    REQUIRE((e.has_value() && e->has_value()));

    // The genuine message deletes; the same bytes again find a fresh entry
    // of a reused 5-tuple and are refused.
    const auto genuine = ring.seal(plain);
    inv.on_datagram(genuine);
    CHECK(inv.counters().applied == 1);
    REQUIRE(maps.conntrack_insert(flow(1), to_a).has_value());
    inv.on_datagram(genuine);
    CHECK(inv.counters().refused_replayed == 1);
    e = maps.conntrack(flow(1));
    REQUIRE((e.has_value() && e->has_value()));
    CHECK(inv.counters().applied == 1);
  }
}

}  // namespace mixlb
