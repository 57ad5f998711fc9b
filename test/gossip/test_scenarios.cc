// Cluster scenarios on the simulated network, each told as what an operator
// would see: partitions that heal, members that leave, keys that rotate, an
// intruder without the key, a slow member, user events and metadata reaching
// everyone. Every scenario prints its seed; MIXLB_GOSSIP_SEED replays it.
#include <doctest/doctest.h>

#include <map>
#include <ostream>  // doctest prints std::error_code through it
#include <set>
#include <string>
#include <vector>

#include "error.h"
#include "keyring.h"
#include "sim.h"
#include "swim.h"

namespace mixlb::gossip {
namespace {

using sim::Simulation;

Bytes bytes_of(const std::string& text) { return Bytes(text.begin(), text.end()); }

// Starts n nodes through seeds 0..2 and waits until everyone sees everyone.
void form_cluster(Simulation& sim, int n) {
  sim::start_cluster(sim, n, 3, 1s);
  sim.run_for(1s);
  REQUIRE(sim.run_until([&] { return sim.size() == n && sim.converged(); }, 60s));
}

// Counts member events of one kind about one subject, by observer.
struct Tally {
  std::map<std::pair<std::string, MemberEventKind>, std::set<int>> seen;

  explicit Tally(Simulation& sim) {
    sim.on_event = [this](int observer, const Event& event) {
      if (const auto* e = std::get_if<MemberEvent>(&event)) {
        seen[{e->member.name, e->kind}].insert(observer);
      }
    };
  }
  std::size_t count(const std::string& subject, MemberEventKind kind) const {
    auto it = seen.find({subject, kind});
    return it == seen.end() ? 0 : it->second.size();
  }
};

TEST_CASE("a partition splits the cluster in two, and it heals on its own") {
  Simulation sim("partition and heal", sim::test_seed(101));
  sim.set_loss(0.01);
  form_cluster(sim, 40);
  std::vector<int> side;  // the seeds' side: nodes 0..19
  for (int i = 0; i < 20; ++i) side.push_back(i);
  sim.partition(side);

  // Each side declares the whole other side dead.
  REQUIRE(sim.run_until(
      [&] {
        for (int i = 0; i < 40; ++i) {
          for (int j = 0; j < 40; ++j) {
            if ((i < 20) == (j < 20)) continue;
            const Member* m = sim.node(i).member(sim.name(j));
            if (m != nullptr && m->state != MemberState::kDead) return false;
          }
        }
        return true;
      },
      120s));
  // Nobody on either side lost sight of its own side.
  for (int i = 0; i < 40; ++i) {
    for (int j = 0; j < 40; ++j) {
      if ((i < 20) != (j < 20)) continue;
      CHECK(sim.node(i).member(sim.name(j))->state != MemberState::kDead);
    }
  }

  // The network heals; the seedless side re-joins the seeds by itself.
  sim.heal();
  const auto healed_at = sim.elapsed();
  REQUIRE(sim.run_until([&] { return sim.converged(); }, 180s));
  MESSAGE("healed after " << sim::seconds(sim.elapsed() - healed_at) << " s");
  CHECK(sim.elapsed() - healed_at <= sim.base_config().rejoin_interval + 60s);
}

TEST_CASE("a member that leaves is marked left by everyone, dead by no one") {
  Simulation sim("leave", sim::test_seed(102));
  sim.set_loss(0.05);
  form_cluster(sim, 30);
  Tally tally(sim);
  sim.node(7).leave(sim.now());
  REQUIRE(
      sim.run_until([&] { return tally.count(sim.name(7), MemberEventKind::kLeft) == 29; }, 10s));
  sim.crash(7);  // the process exits after its goodbye
  sim.run_for(60s);
  CHECK(tally.count(sim.name(7), MemberEventKind::kDead) == 0);
  CHECK(tally.count(sim.name(7), MemberEventKind::kLeft) == 29);
}

TEST_CASE("a suspect with a flaky uplink refutes and is never declared dead") {
  Simulation sim("refutation", sim::test_seed(103));
  form_cluster(sim, 30);
  Tally tally(sim);
  // Node 4 loses 80 % of what it sends for a minute: it is suspected again
  // and again, and refutes every time.
  for (int j = 0; j < 30; ++j) {
    if (j != 4) sim.set_link_loss(4, j, 0.8);
  }
  sim.run_for(60s);
  for (int j = 0; j < 30; ++j) {
    if (j != 4) sim.set_link_loss(4, j, 0.0);
  }
  REQUIRE(sim.run_until(
      [&] {
        for (int i = 0; i < 30; ++i) {
          if (sim.node(i).member(sim.name(4))->state != MemberState::kAlive) return false;
        }
        return true;
      },
      30s));
  CHECK(tally.count(sim.name(4), MemberEventKind::kSuspect) > 0);
  CHECK(sim.node(4).stats().refutations > 0);
  CHECK(tally.count(sim.name(4), MemberEventKind::kDead) == 0);
  for (int i = 0; i < 30; ++i) {
    CHECK(sim.node(i).member(sim.name(4))->incarnation == sim.node(4).self().incarnation);
  }
}

TEST_CASE("user events reach every member exactly once, at 10 % loss") {
  Simulation sim("user events", sim::test_seed(104));
  sim.use_key(generate_key());
  sim.set_loss(0.1);
  form_cluster(sim, 50);
  std::map<std::pair<int, std::uint64_t>, int> deliveries;
  std::map<std::uint64_t, std::string> payloads;
  sim.on_event = [&](int observer, const Event& event) {
    if (const auto* e = std::get_if<UserEventDelivery>(&event)) {
      CHECK(e->origin == sim.name(3));
      CHECK(std::string(e->payload.begin(), e->payload.end()) == payloads[e->seq]);
      ++deliveries[{observer, e->seq}];
    }
  };
  for (int k = 0; k < 20; ++k) {
    sim.at(sim.elapsed() + std::chrono::milliseconds(100 * k), [&, k] {
      const std::string text = "invalidate flow " + std::to_string(k);
      auto seq = sim.node(3).send_event(bytes_of(text), sim.now());
      REQUIRE(seq);
      payloads[*seq] = text;
    });
  }
  sim.run_for(30s);
  REQUIRE(payloads.size() == 20);
  for (int i = 0; i < 50; ++i) {
    for (const auto& [seq, text] : payloads) {
      CAPTURE(i);
      CAPTURE(text);
      CHECK(deliveries[{i, seq}] == (i == 3 ? 0 : 1));
    }
  }
}

TEST_CASE("a metadata change reaches every member, at 10 % loss") {
  Simulation sim("metadata", sim::test_seed(105));
  sim.set_loss(0.1);
  form_cluster(sim, 50);
  const Bytes drained = bytes_of("vip 10.9.0.1:80 weight 0");
  REQUIRE_FALSE(sim.node(9).set_metadata(drained, sim.now()));
  REQUIRE(sim.run_until(
      [&] {
        for (int i = 0; i < 50; ++i) {
          if (sim.node(i).member(sim.name(9))->metadata != drained) return false;
        }
        return true;
      },
      60s));
  MESSAGE("everyone had it after " << sim::seconds(sim.elapsed()) << " s of virtual time");
}

TEST_CASE("keys rotate with no flag day: secondary, primary, removal, one node at a time") {
  Simulation sim("key rotation", sim::test_seed(106));
  const Key old_key = generate_key();
  const Key new_key = generate_key();
  sim.use_key(old_key);
  sim.set_loss(0.02);
  form_cluster(sim, 20);
  Tally tally(sim);
  auto step = [&](KeyOp op, const Key& key) {
    for (int i = 0; i < 20; ++i) {
      sim.input(i, [&](Swim& node) { REQUIRE_FALSE(node.change_key(op, key, sim.now())); });
      sim.run_for(500ms);  // the cluster keeps talking between nodes
    }
    sim.run_for(5s);
  };
  step(KeyOp::kInstall, new_key);
  step(KeyOp::kUse, new_key);
  step(KeyOp::kRemove, old_key);
  sim.run_for(30s);
  std::uint64_t refused = 0;
  for (int i = 0; i < 20; ++i) {
    refused += sim.node(i).stats().drops[static_cast<std::size_t>(DropReason::kNoKeyAuthenticates)];
    CHECK(sim.node(i).keyring()->keys().size() == 1);
  }
  CHECK(refused == 0);
  for (int i = 0; i < 20; ++i) CHECK(tally.count(sim.name(i), MemberEventKind::kDead) == 0);
  CHECK(sim.converged());

  // A node that still has only the old key is shut out.
  const int straggler = sim.add_node({}, std::optional<Key>(old_key));
  sim.join(straggler, {0, 1, 2});
  sim.run_for(30s);
  CHECK(sim.node(straggler).live_members() == 1);
  CHECK(sim.node(0).member(sim.name(straggler)) == nullptr);
}

TEST_CASE("the rotation order matters: a primary nobody accepts cuts its node off") {
  Simulation sim("premature primary", sim::test_seed(107));
  const Key old_key = generate_key();
  const Key new_key = generate_key();
  sim.use_key(old_key);
  form_cluster(sim, 10);
  Tally tally(sim);
  // Node 5 seals with a key the others do not have yet.
  sim.input(5, [&](Swim& node) {
    REQUIRE_FALSE(node.change_key(KeyOp::kInstall, new_key, sim.now()));
    REQUIRE_FALSE(node.change_key(KeyOp::kUse, new_key, sim.now()));
  });
  REQUIRE(
      sim.run_until([&] { return tally.count(sim.name(5), MemberEventKind::kDead) == 9; }, 120s));
  CHECK(sim.node(0).stats().drops[static_cast<std::size_t>(DropReason::kNoKeyAuthenticates)] > 0);
}

TEST_CASE("a member with the wrong key can neither join, nor change membership, nor send events") {
  Simulation sim("intruder", sim::test_seed(108));
  sim.use_key(generate_key());
  form_cluster(sim, 20);
  Tally tally(sim);
  int user_events = 0;
  std::vector<SyncResult> intruder_syncs;
  const int intruder = sim.add_node({}, std::optional<Key>(generate_key()));
  auto tallying = sim.on_event;
  sim.on_event = [&](int observer, const Event& event) {
    tallying(observer, event);
    if (std::holds_alternative<UserEventDelivery>(event)) ++user_events;
    if (const auto* r = std::get_if<SyncResult>(&event); r && observer == intruder) {
      intruder_syncs.push_back(*r);
    }
  };

  // It tries to join through every seed.
  sim.join(intruder, {0, 1, 2});
  sim.run_for(10s);
  REQUIRE(intruder_syncs.size() == 3);
  for (const auto& r : intruder_syncs) CHECK(r.error);
  CHECK(sim.node(intruder).live_members() == 1);

  // It forges membership changes and a user event, sealed with its key, and
  // the same in plaintext.
  Keyring forger(Simulation::kClusterName, generate_key());
  const std::vector<Message> forged{
      Dead{sim.node(3).self().incarnation + 5, sim.name(3), sim.name(intruder)},
      Suspect{sim.node(4).self().incarnation + 5, sim.name(4), sim.name(intruder)},
      Alive{1, "mallory", Address::v4(10, 66, 6, 6, 7946), {}},
      UserEvent{"mallory", 1, bytes_of("drop all flows")},
  };
  auto plain = encode_packet(forged);
  REQUIRE(plain);
  for (int i = 0; i < 20; ++i) {
    sim.inject(sim.address(intruder), i, forger.seal(*plain));
    sim.inject(sim.address(intruder), i, *plain);
  }
  sim.run_for(30s);

  for (int i = 0; i < 20; ++i) {
    CHECK(sim.node(i).member(sim.name(intruder)) == nullptr);
    CHECK(sim.node(i).member("mallory") == nullptr);
    CHECK(sim.node(i).member(sim.name(3))->state == MemberState::kAlive);
    CHECK(sim.node(i).member(sim.name(4))->state == MemberState::kAlive);
    const auto& drops = sim.node(i).stats().drops;
    CHECK(drops[static_cast<std::size_t>(DropReason::kNoKeyAuthenticates)] >= 1);
    CHECK(drops[static_cast<std::size_t>(DropReason::kNotEncrypted)] >= 1);
  }
  CHECK(user_events == 0);
  CHECK(tally.count(sim.name(3), MemberEventKind::kSuspect) == 0);
  CHECK(tally.count(sim.name(4), MemberEventKind::kSuspect) == 0);
  CHECK(sim.node(0).stats().last_drop.find(sim.address(intruder).to_string()) == 0);
}

// The Lifeguard paper's slow-member experiment, scaled down: one member of 32
// processes everything it receives 5 to 7.5 s late for ten virtual minutes,
// the others are healthy; run with Lifeguard, without local health, and as
// classic SWIM (no local health, fixed suspicion timeout).
struct SlowRun {
  std::uint64_t false_deaths = 0;          // healthy members declared dead, by anyone
  std::uint64_t slow_node_suspicions = 0;  // healthy members the slow node accused
};

SlowRun run_with_slow_member(const std::string& label, int awareness, int suspicion_max_mult) {
  Simulation sim(label, sim::test_seed(109));
  sim.base_config().awareness_max_multiplier = awareness;
  sim.base_config().suspicion_max_timeout_mult = suspicion_max_mult;
  form_cluster(sim, 32);
  constexpr int kSlow = 5;
  SlowRun result;
  sim.on_event = [&](int, const Event& event) {
    if (const auto* e = std::get_if<MemberEvent>(&event);
        e && e->kind == MemberEventKind::kDead && e->member.name != sim.name(kSlow)) {
      ++result.false_deaths;
    }
  };
  const auto before = sim.node(kSlow).stats().suspicions_raised;
  sim.set_slow(kSlow, 5s);
  sim.run_for(600s);
  result.slow_node_suspicions = sim.node(kSlow).stats().suspicions_raised - before;
  MESSAGE(label << ": " << result.false_deaths << " false deaths, the slow member accused "
                << result.slow_node_suspicions << " healthy members");
  return result;
}

TEST_CASE("a slow member does not get healthy members declared dead (Lifeguard)") {
  const SlowRun lifeguard = run_with_slow_member("slow member, Lifeguard", 8, 6);
  const SlowRun no_awareness = run_with_slow_member("slow member, no local health", 1, 6);
  const SlowRun classic = run_with_slow_member("slow member, classic SWIM", 1, 1);
  CHECK(lifeguard.false_deaths == 0);
  // Local health is what keeps the slow member from accusing everyone, and
  // some of those accusations outlast the slow member's late refutations.
  CHECK(no_awareness.slow_node_suspicions >= 4 * lifeguard.slow_node_suspicions);
  CHECK(no_awareness.false_deaths > 0);
  // Without Lifeguard at all, the slow member's accusations become deaths.
  CHECK(classic.false_deaths > 0);
}

}  // namespace
}  // namespace mixlb::gossip
