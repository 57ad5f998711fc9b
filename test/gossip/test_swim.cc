// The protocol core in small, exact situations: two or three nodes on a
// perfect network, where each step of the protocol can be checked as it
// happens — probes and acks, indirect probes and nacks, the buddy system,
// refutation, metadata and user events, precedence of updates, leave, and the
// Lifeguard health score.
#include <doctest/doctest.h>

#include <algorithm>
#include <ostream>  // doctest prints std::error_code through it
#include <string>
#include <vector>

#include "error.h"
#include "sim.h"
#include "swim.h"

namespace mixlb::gossip {
namespace {

using sim::Simulation;

// A pair or trio of nodes that have joined through node 0 and converged.
Simulation small_cluster(const std::string& label, int n) {
  Simulation sim(label, sim::test_seed(1));
  for (int i = 0; i < n; ++i) sim.add_node();
  for (int i = 1; i < n; ++i) sim.join(i, {0});
  REQUIRE(sim.run_until([&] { return sim.converged(); }, 10s));
  return sim;
}

Bytes bytes_of(const std::string& text) { return Bytes(text.begin(), text.end()); }

TEST_CASE("a node alone probes no one and sends nothing") {
  Simulation sim("alone", sim::test_seed(1));
  sim.add_node();
  sim.run_for(60s);
  CHECK(sim.node(0).stats().probes == 0);
  CHECK(sim.node(0).stats().datagrams_sent == 0);
  CHECK(sim.node(0).live_members() == 1);
}

TEST_CASE("seeds given by name are resolved again at every re-join round") {
  Simulation sim("named seeds", sim::test_seed(7));
  sim.base_config().rejoin_interval = 5s;
  for (int i = 0; i < 4; ++i) sim.add_node();
  sim.join(1, {0});
  REQUIRE(sim.run_until([&] { return sim.node(0).live_members() == 2; }, 10s));

  // Node 2's seed name resolves to nothing yet (the record is not there).
  std::vector<Address> answer;
  int asked = 0;
  sim.resolve_seeds = [&](int node) {
    if (node == 2) ++asked;
    return answer;
  };
  std::size_t joins = 99;
  sim.input(2, [&](Swim& swim) { joins = swim.named_seeds_resolved(answer, sim.now()); });
  CHECK(joins == 0);
  sim.run_for(16s);
  CHECK(asked == 3);  // one resolution per re-join round, nothing else
  CHECK(sim.node(2).live_members() == 1);

  // The record appears: the next round finds node 1 and joins the cluster.
  answer = {sim.address(1)};
  REQUIRE(sim.run_until([&] { return sim.node(2).live_members() == 3; }, 6s));
  CHECK(asked == 4);

  // A first resolution joins through every address it gives, this node's own
  // left out.
  sim.resolve_seeds = [&](int) { return std::vector<Address>{sim.address(0), sim.address(3)}; };
  sim.input(3, [&](Swim& swim) {
    joins = swim.named_seeds_resolved(std::vector<Address>{sim.address(3), sim.address(0), sim.address(2)},
                                      sim.now());
  });
  CHECK(joins == 2);
  REQUIRE(sim.run_until([&] { return sim.converged(); }, 10s));
}

TEST_CASE("two nodes join through a push-pull and then probe each other") {
  Simulation sim = small_cluster("two nodes", 2);
  const auto probes_before = sim.node(0).stats().probes;
  sim.run_for(10s);
  // One probe per interval, each answered: no suspicion, no indirect probes.
  CHECK(sim.node(0).stats().probes - probes_before >= 9);
  CHECK(sim.node(0).stats().probes_failed == 0);
  CHECK(sim.node(0).stats().indirect_probes == 0);
  CHECK(sim.node(0).health_score() == 0);
  CHECK(sim.converged());
}

TEST_CASE("a silent member is probed indirectly, suspected, then declared dead") {
  Simulation sim = small_cluster("silent member", 3);
  std::vector<std::pair<int, MemberEventKind>> about_2;
  sim.on_event = [&](int observer, const Event& event) {
    if (const auto* e = std::get_if<MemberEvent>(&event); e && e->member.name == sim.name(2)) {
      about_2.emplace_back(observer, e->kind);
    }
  };
  sim.crash(2);
  REQUIRE(sim.run_until(
      [&] {
        return sim.node(0).member(sim.name(2))->state == MemberState::kDead &&
               sim.node(1).member(sim.name(2))->state == MemberState::kDead;
      },
      60s));
  // Each survivor went through suspicion before death, none skipped it.
  for (int observer : {0, 1}) {
    auto first_suspect =
        std::find(about_2.begin(), about_2.end(), std::pair{observer, MemberEventKind::kSuspect});
    auto first_dead =
        std::find(about_2.begin(), about_2.end(), std::pair{observer, MemberEventKind::kDead});
    CHECK(first_suspect < first_dead);
  }
  CHECK(sim.node(0).stats().indirect_probes + sim.node(1).stats().indirect_probes >= 1);
}

TEST_CASE("a helper that cannot reach the target answers a nack, sparing the prober's health") {
  Simulation sim = small_cluster("nack", 3);
  // 1 cannot reach 2 and 2 cannot answer 1; 0 still reaches 2 through no
  // one, because 0 -> 2 is cut too. 0's probes of 2 then fail with 1's nack.
  sim.cut(0, 2);
  sim.cut(1, 2);
  sim.run_for(30s);
  // Node 0 failed probes of 2 but got the nacks it expected from 1, so its
  // own health did not suffer for it.
  CHECK(sim.node(0).stats().probes_failed >= 1);
  CHECK(sim.node(0).stats().nacks_received >= 1);
  CHECK(sim.node(0).health_score() == 0);
}

TEST_CASE("missing nacks raise the prober's health score and stretch its probe interval") {
  Simulation sim = small_cluster("missed nacks", 3);
  // Node 0 hears nothing at all: every ack and nack to it is lost.
  sim.set_link_loss(1, 0, 1.0);
  sim.set_link_loss(2, 0, 1.0);
  sim.run_for(8s);
  CHECK(sim.node(0).health_score() >= 2);
  const auto probes = sim.node(0).stats().probes;
  sim.run_for(30s);
  // At a score of s a probe takes (s + 1) intervals: far fewer than 30.
  CHECK(sim.node(0).stats().probes - probes < 15);
}

TEST_CASE("a suspect refutes through the buddy system and comes back alive") {
  Simulation sim = small_cluster("refute", 3);
  const auto incarnation = sim.node(2).self().incarnation;
  std::vector<MemberEventKind> seen_by_0;
  sim.on_event = [&](int observer, const Event& event) {
    if (const auto* e = std::get_if<MemberEvent>(&event);
        e && observer == 0 && e->member.name == sim.name(2)) {
      seen_by_0.push_back(e->kind);
    }
  };
  // 2's acks to 0 and 1 are lost for a while: it becomes suspect.
  sim.cut(2, 0);
  sim.cut(2, 1);
  REQUIRE(sim.run_until(
      [&] { return sim.node(0).member(sim.name(2))->state == MemberState::kSuspect; }, 20s));
  sim.uncut(2, 0);
  sim.uncut(2, 1);
  REQUIRE(sim.run_until(
      [&] {
        return sim.node(0).member(sim.name(2))->state == MemberState::kAlive &&
               sim.node(1).member(sim.name(2))->state == MemberState::kAlive;
      },
      10s));
  CHECK(sim.node(2).self().incarnation > incarnation);
  CHECK(sim.node(2).stats().refutations >= 1);
  CHECK(sim.node(0).member(sim.name(2))->incarnation == sim.node(2).self().incarnation);
  REQUIRE(seen_by_0.size() >= 2);
  CHECK(seen_by_0[0] == MemberEventKind::kSuspect);
  CHECK(seen_by_0[1] == MemberEventKind::kAlive);
}

TEST_CASE("metadata changes bump the incarnation and reach every member") {
  Simulation sim = small_cluster("metadata", 3);
  std::vector<int> updated;
  sim.on_event = [&](int observer, const Event& event) {
    if (const auto* e = std::get_if<MemberEvent>(&event);
        e && e->kind == MemberEventKind::kUpdated && e->member.name == sim.name(1)) {
      CHECK(e->member.metadata == bytes_of("weight=0"));
      updated.push_back(observer);
    }
  };
  const auto incarnation = sim.node(1).self().incarnation;
  REQUIRE_FALSE(sim.node(1).set_metadata(bytes_of("weight=0"), sim.now()));
  CHECK(sim.node(1).self().incarnation == incarnation + 1);
  sim.run_for(3s);
  std::sort(updated.begin(), updated.end());
  CHECK(updated == std::vector<int>{0, 2});
  CHECK(sim.node(0).member(sim.name(1))->metadata == bytes_of("weight=0"));
  CHECK(sim.node(1).set_metadata(Bytes(sim.node(1).config().max_metadata_size + 1, 0), sim.now()) ==
        Errc::kTooLarge);
}

TEST_CASE("a user event is delivered once to every other member, never to its origin") {
  Simulation sim = small_cluster("user event", 3);
  std::vector<std::pair<int, std::string>> delivered;
  sim.on_event = [&](int observer, const Event& event) {
    if (const auto* e = std::get_if<UserEventDelivery>(&event)) {
      delivered.emplace_back(observer, std::string(e->payload.begin(), e->payload.end()));
      CHECK(e->origin == sim.name(0));
    }
  };
  auto seq = sim.node(0).send_event(bytes_of("invalidate 10.0.0.1:80"), sim.now());
  REQUIRE(seq);
  sim.run_for(10s);  // long enough for every retransmission
  std::sort(delivered.begin(), delivered.end());
  CHECK(delivered == std::vector<std::pair<int, std::string>>{{1, "invalidate 10.0.0.1:80"},
                                                              {2, "invalidate 10.0.0.1:80"}});
  CHECK(sim.node(0)
            .send_event(Bytes(sim.node(0).config().max_event_payload + 1, 0), sim.now())
            .error() == Errc::kTooLarge);
}

// Three nodes of the given burst setting; node 0 queues 300 events of 200
// bytes (six fit a packet's share) at once. Returns how many of the 600
// deliveries (300 to each of nodes 1 and 2) were made within `within`.
int burst_deliveries(int burst_packets, Duration within) {
  Simulation sim("event burst " + std::to_string(burst_packets), sim::test_seed(3));
  sim.base_config().event_burst_packets = burst_packets;
  for (int i = 0; i < 3; ++i) sim.add_node();
  for (int i = 1; i < 3; ++i) sim.join(i, {0});
  REQUIRE(sim.run_until([&] { return sim.converged(); }, 10s));
  int delivered = 0;
  sim.on_event = [&](int, const Event& event) {
    if (std::holds_alternative<UserEventDelivery>(event)) ++delivered;
  };
  sim.input(0, [&](Swim& swim) {
    for (int i = 0; i < 300; ++i) {
      Bytes payload(200, static_cast<std::uint8_t>(i));
      REQUIRE(swim.send_event(payload, sim.now()));
    }
  });
  sim.run_for(within);
  if (burst_packets > 0) CHECK(sim.node(0).stats().event_burst_packets > 0);
  else CHECK(sim.node(0).stats().event_burst_packets == 0);
  return delivered;
}

TEST_CASE("a burst of user events goes out in extra packets within a few gossip rounds") {
  // One packet per target and round carries six of them: 300 events need 25
  // rounds (5 s) to go out once. With up to 16 more packets a round, each
  // event goes out once in the first three rounds (to a random member), and
  // is sent again in each later round until its transmissions run out.
  const int with_burst = burst_deliveries(16, 3s);
  const int without = burst_deliveries(0, 3s);
  MESSAGE("deliveries of 600 within 3 s: ", with_burst, " with extra packets, ", without, " without");
  CHECK(with_burst == 600);
  CHECK(without < 400);
}

TEST_CASE("a burst of user events leaves membership updates their share of every packet") {
  Simulation sim = small_cluster("burst and metadata", 3);
  sim.input(0, [&](Swim& swim) {
    for (int i = 0; i < 300; ++i) REQUIRE(swim.send_event(Bytes(200, 7), sim.now()));
    REQUIRE_FALSE(swim.set_metadata(bytes_of("weight=0"), sim.now()));
  });
  // The update goes out in the first round, ahead of the queued events.
  sim.run_for(sim.node(0).config().gossip_interval + 50ms);
  CHECK(sim.node(1).member(sim.name(0))->metadata == bytes_of("weight=0"));
  CHECK(sim.node(2).member(sim.name(0))->metadata == bytes_of("weight=0"));
}

// How long until both other members of a quiet trio have an event of node
// 0's, given its event_round_gap.
Duration first_delivery(Duration gap) {
  Simulation sim("event round gap", sim::test_seed(5));
  sim.base_config().event_round_gap = gap;
  for (int i = 0; i < 3; ++i) sim.add_node();
  for (int i = 1; i < 3; ++i) sim.join(i, {0});
  REQUIRE(sim.run_until([&] { return sim.converged(); }, 10s));
  sim.run_for(5s);  // quiet: nothing queued, no gossip round armed
  int delivered = 0;
  sim.on_event = [&](int, const Event& event) {
    if (std::holds_alternative<UserEventDelivery>(event)) ++delivered;
  };
  const TimePoint sent = sim.now();
  sim.input(0, [&](Swim& swim) { REQUIRE(swim.send_event(bytes_of("x"), sim.now())); });
  REQUIRE(sim.run_until([&] { return delivered == 2; }, 2s, 1ms));
  return sim.now() - sent;
}

TEST_CASE("a new event of this node starts a gossip round at once, not at the next interval") {
  const Duration eager = first_delivery(20ms);
  const Duration waiting = first_delivery(Duration::zero());
  MESSAGE("both members had the event after ", sim::seconds(eager) * 1000, " ms with event_round_gap 20 ms, ",
          sim::seconds(waiting) * 1000, " ms without");
  CHECK(eager <= 5ms);  // the round runs now; the simulated network's delay only
  CHECK(waiting > 20ms);
}

TEST_CASE("the user-event queue is bounded: new events are refused, others' not relayed") {
  Simulation sim("event queue bound", sim::test_seed(4));
  sim.base_config().max_queued_events = 10;
  for (int i = 0; i < 3; ++i) sim.add_node();
  for (int i = 1; i < 3; ++i) sim.join(i, {0});
  REQUIRE(sim.run_until([&] { return sim.converged(); }, 10s));
  std::vector<int> delivered(3);
  sim.on_event = [&](int observer, const Event& event) {
    if (std::holds_alternative<UserEventDelivery>(event)) ++delivered[observer];
  };
  for (int i = 0; i < 10; ++i) REQUIRE(sim.node(1).send_event(bytes_of("mine"), sim.now()));
  CHECK(sim.node(1).send_event(bytes_of("one too many"), sim.now()).error() == Errc::kQueueFull);
  CHECK(sim.node(1).stats().events_dropped == 1);
  // Node 1's queue is full when node 0's event reaches it: delivered there,
  // not queued again (node 2 has it from node 0 itself).
  sim.input(0, [&](Swim& swim) { REQUIRE(swim.send_event(bytes_of("theirs"), sim.now())); });
  REQUIRE(sim.run_until([&] { return delivered[1] >= 1; }, 1s, 10ms));
  CHECK(sim.node(1).stats().events_dropped == 2);
  sim.run_for(10s);
  CHECK(delivered[1] == 1);
  CHECK(delivered[2] == 11);
  CHECK(delivered[0] == 10);
}

TEST_CASE("a member that leaves is marked left, not dead, and stops probing") {
  Simulation sim = small_cluster("leave", 3);
  std::vector<std::pair<int, MemberEventKind>> about_2;
  sim.on_event = [&](int observer, const Event& event) {
    if (const auto* e = std::get_if<MemberEvent>(&event); e && e->member.name == sim.name(2)) {
      about_2.emplace_back(observer, e->kind);
    }
  };
  sim.node(2).leave(sim.now());
  CHECK(sim.node(2).has_left());
  CHECK(sim.node(2).send_event(bytes_of("x"), sim.now()).error() == Errc::kLeft);
  sim.run_for(2s);
  const auto probes = sim.node(2).stats().probes;
  sim.run_for(10s);
  CHECK(sim.node(2).stats().probes == probes);
  CHECK(sim.node(0).member(sim.name(2))->state == MemberState::kLeft);
  CHECK(sim.node(1).member(sim.name(2))->state == MemberState::kLeft);
  std::sort(about_2.begin(), about_2.end());
  CHECK(about_2 == std::vector<std::pair<int, MemberEventKind>>{{0, MemberEventKind::kLeft},
                                                                {1, MemberEventKind::kLeft}});
}

TEST_CASE("a forged death notice about a live member is refuted by the member") {
  Simulation sim = small_cluster("forged death", 3);
  // Node 0 says (wrongly) that 1 is dead; 1 hears of it and refutes.
  Bytes plain{kWireVersion};
  REQUIRE_FALSE(
      append_message(plain, Dead{sim.node(1).self().incarnation, sim.name(1), sim.name(0)}));
  sim.inject(sim.address(0), 1, plain);
  sim.inject(sim.address(0), 2, plain);
  sim.run_for(5s);
  CHECK(sim.node(1).stats().refutations >= 1);
  CHECK(sim.node(0).member(sim.name(1))->state == MemberState::kAlive);
  CHECK(sim.node(2).member(sim.name(1))->state == MemberState::kAlive);
}

TEST_CASE("dead members are forgotten after gossip_to_the_dead") {
  Simulation sim = small_cluster("forget the dead", 3);
  sim.crash(2);
  REQUIRE(sim.run_until(
      [&] { return sim.node(0).member(sim.name(2))->state == MemberState::kDead; }, 60s));
  CHECK(sim.node(0).known_members() == 3);
  sim.run_for(sim.node(0).config().gossip_to_the_dead + 5s);
  CHECK(sim.node(0).member(sim.name(2)) == nullptr);
  CHECK(sim.node(0).known_members() == 2);
}

}  // namespace
}  // namespace mixlb::gossip
