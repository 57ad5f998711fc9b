// Cluster-wide key rotation by key requests (`serf keys`), on the simulated
// network, told as an operator would see it: every member lists, installs,
// uses and removes from one command each; members join and leave between
// the steps, and one crashes during a step; a member away during a step is
// reported and brought back by repeating it; a member left with only the
// removed key is cut off. Every scenario prints its seed.
#include <doctest/doctest.h>

#include <map>
#include <optional>
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

using sim::KeyWatch;
using sim::Simulation;

constexpr int kNodes = 20;

// Starts kNodes nodes through seeds 0..2 and waits until everyone sees
// everyone.
void form_cluster(Simulation& sim) {
  sim::start_cluster(sim, kNodes, 3, 1s);
  sim.run_for(1s);
  REQUIRE(sim.run_until([&] { return sim.size() == kNodes && sim.converged(); }, 60s));
}

// A cluster of kNodes sealing with `old_key`, formed on a network that
// loses `loss` of the datagrams; `new_key` is the key to rotate to, `keys`
// watches every node's key events.
struct Rotation {
  Rotation(const std::string& label, std::uint64_t seed, double loss)
      : sim(label, sim::test_seed(seed)) {
    sim.use_key(old_key);
    sim.set_loss(loss);
    form_cluster(sim);
  }
  const Key old_key = generate_key();
  const Key new_key = generate_key();
  Simulation sim;
  KeyWatch keys{sim};
};

// Who declared whom dead, from its making on.
struct Deaths {
  std::set<std::pair<int, std::string>> seen;
  explicit Deaths(Simulation& sim) {
    sim.on_event = [this](int observer, const Event& event) {
      if (const auto* e = std::get_if<MemberEvent>(&event);
          e && e->kind == MemberEventKind::kDead) {
        seen.emplace(observer, e->member.name);
      }
    };
  }
  std::size_t of(const std::string& name) const {
    std::size_t n = 0;
    for (const auto& [observer, dead] : seen) n += dead == name;
    return n;
  }
};

std::uint64_t refused(Swim& node) {
  return node.stats().drops[static_cast<std::size_t>(DropReason::kNoKeyAuthenticates)];
}

// Every answer of `result` is `outcome`, except those of `except`.
void check_all(const KeyResult& result, KeyOutcome outcome,
               const std::set<std::string>& except = {}) {
  for (const auto& answer : result.answers) {
    if (except.count(answer.member)) continue;
    CAPTURE(answer.member);
    CHECK(answer.outcome == outcome);
  }
}

TEST_CASE(
    "a full rotation from one member at 20 nodes and 10 % loss: every member ok at every step") {
  Rotation rotation("key rotation by requests", 201, 0.1);
  auto& [old_key, new_key, sim, keys] = rotation;
  Deaths deaths(sim);
  std::vector<std::uint64_t> refused_before;
  for (int i = 0; i < kNodes; ++i) refused_before.push_back(refused(sim.node(i)));

  const auto listed = keys.request(7, KeyOp::kList, std::nullopt);
  REQUIRE(listed);
  CHECK(listed->ok());
  CHECK(listed->answers.size() == kNodes);
  for (const auto& answer : listed->answers)
    CHECK(answer.keys == std::vector<KeyId>{key_id(old_key)});

  const auto start = sim.elapsed();
  std::map<KeyOp, double> took;
  for (const auto& [op, key] :
       {std::pair{KeyOp::kInstall, new_key}, std::pair{KeyOp::kUse, new_key},
        std::pair{KeyOp::kRemove, old_key}}) {
    CAPTURE(to_string(op));
    const auto result = keys.request(7, op, key);
    REQUIRE(result);
    CHECK(result->ok());
    CHECK_FALSE(result->timed_out);
    CHECK(result->answers.size() == kNodes);
    took[op] = sim::seconds(result->elapsed);
  }
  const double total = sim::seconds(sim.elapsed() - start);
  MESSAGE("install " << took[KeyOp::kInstall] << " s, use " << took[KeyOp::kUse] << " s, remove "
                     << took[KeyOp::kRemove] << " s; the rotation " << total << " s");

  const auto after = keys.request(12, KeyOp::kList, std::nullopt);
  REQUIRE(after);
  CHECK(after->ok());
  for (const auto& answer : after->answers)
    CHECK(answer.keys == std::vector<KeyId>{key_id(new_key)});
  for (int i = 0; i < kNodes; ++i) {
    CAPTURE(i);
    // Three changes each, the last one leaving the new key alone.
    const std::vector<std::vector<Key>> expected{{old_key, new_key}, {new_key, old_key}, {new_key}};
    CHECK(keys.changes(i) == expected);
    CHECK(sim.node(i).stats().key_requests_applied == 5);
    // At no step did a member seal with a key another could not open.
    CHECK(refused(sim.node(i)) == refused_before[i]);
  }
  CHECK(deaths.seen.empty());
  sim.run_for(30s);
  CHECK(sim.converged());

  // A node that still has only the old key can neither join nor be heard.
  const int straggler = sim.add_node({}, std::optional<Key>(old_key));
  sim.join(straggler, {0, 1, 2});
  sim.run_for(30s);
  CHECK(sim.node(straggler).live_members() == 1);
  std::uint64_t dropped = 0;
  for (int i = 0; i < kNodes; ++i) {
    CHECK(sim.node(i).member(sim.name(straggler)) == nullptr);
    dropped += refused(sim.node(i)) - refused_before[i];
  }
  CHECK(dropped >= 3);  // at least its three join attempts
}

TEST_CASE("members join and leave between the steps, and one crashes as the removal starts") {
  Rotation rotation("rotation while members come and go", 205, 0.05);
  auto& [old_key, new_key, sim, keys] = rotation;

  const auto installed = keys.request(0, KeyOp::kInstall, new_key);
  REQUIRE(installed);
  CHECK(installed->ok());
  CHECK(installed->answers.size() == kNodes);

  // Between the install and the use: a node provisioned with the keyring
  // file as it is now (the old key primary, the new one installed) joins,
  // and node 3 leaves.
  const int newcomer = sim.add_node();
  sim.input(newcomer, [&](Swim& node) {
    REQUIRE_FALSE(node.change_key(KeyOp::kInstall, new_key, sim.now()));
  });
  sim.join(newcomer, {0, 1, 2});
  sim.input(3, [&](Swim& node) { node.leave(sim.now()); });
  REQUIRE(sim.run_until(
      [&] {
        const Member* m = sim.node(0).member(sim.name(3));
        return m != nullptr && m->state == MemberState::kLeft;
      },
      30s));
  sim.crash(3);  // the process exits after its goodbye
  REQUIRE(sim.run_until([&] { return sim.converged(); }, 60s));

  // The use waits for the members of its start: the newcomer, not node 3.
  const auto used = keys.request(5, KeyOp::kUse, new_key);
  REQUIRE(used);
  CHECK(used->ok());
  CHECK_FALSE(used->timed_out);
  CHECK(used->answers.size() == kNodes);
  CHECK(KeyWatch::answer(*used, sim.name(newcomer)) != nullptr);
  CHECK(KeyWatch::answer(*used, sim.name(3)) == nullptr);

  // Node 8 crashes as the removal starts: it is reported without an
  // answer, and the removal ends by key_request_timeout at the latest.
  sim.crash(8);
  const auto removed = keys.request(5, KeyOp::kRemove, old_key);
  REQUIRE(removed);
  const KeyAnswer* crashed = KeyWatch::answer(*removed, sim.name(8));
  REQUIRE(crashed != nullptr);
  CHECK(crashed->outcome == KeyOutcome::kNoAnswer);
  CHECK(removed->count(KeyOutcome::kOk) == kNodes - 1);
  CHECK(removed->answers.size() == kNodes);
  CHECK(removed->elapsed <= sim.node(5).config().key_request_timeout);
  MESSAGE("the removal ended after "
          << sim::seconds(removed->elapsed) << " s ("
          << std::string(removed->timed_out ? "timed out" : "node 8 found dead") << ")");

  // A node provisioned with the keyring file as it is now (the new key
  // alone) joins; every running member holds the new key alone.
  const int fresh = sim.add_node({}, std::optional<Key>(new_key));
  sim.join(fresh, {0, 1, 2});
  REQUIRE(sim.run_until([&] { return sim.converged(); }, 60s));
  for (int i = 0; i < sim.size(); ++i) {
    if (!sim.running(i) || i == fresh) continue;
    CAPTURE(i);
    REQUIRE_FALSE(keys.changes(i).empty());
    CHECK(keys.changes(i).back() == std::vector<Key>{new_key});
  }
  CHECK(keys.changes(newcomer) ==
        std::vector<std::vector<Key>>{{old_key, new_key}, {new_key, old_key}, {new_key}});
  CHECK(keys.changes(fresh).empty());
}

TEST_CASE(
    "a member away during the install answers nothing, refuses the use, and is fixed by a second "
    "install") {
  Rotation rotation("partitioned during install", 202, 0.02);
  auto& [old_key, new_key, sim, keys] = rotation;
  const int away = 9;
  const std::string away_name = sim.name(away);

  sim.partition({away});
  const auto installed = keys.request(4, KeyOp::kInstall, new_key);
  REQUIRE(installed);
  CHECK(KeyWatch::answer(*installed, away_name)->outcome == KeyOutcome::kNoAnswer);
  CHECK(installed->count(KeyOutcome::kOk) == kNodes - 1);
  MESSAGE("the install ended after " << sim::seconds(installed->elapsed) << " s");
  sim.heal();
  REQUIRE(sim.run_until([&] { return sim.converged(); }, 120s));

  // The use reaches it under the old key, the only one it has: it refuses,
  // and says so; everyone else switches.
  const auto used = keys.request(4, KeyOp::kUse, new_key);
  REQUIRE(used);
  CHECK_FALSE(used->timed_out);
  const KeyAnswer* refusal = KeyWatch::answer(*used, away_name);
  REQUIRE(refusal != nullptr);
  CHECK(refusal->outcome == KeyOutcome::kFailed);
  CHECK(refusal->error == Errc::kKeyNotInstalled);
  check_all(*used, KeyOutcome::kOk, {away_name});

  // The install again, from another member: a no-op everywhere else.
  const auto again = keys.request(15, KeyOp::kInstall, new_key);
  REQUIRE(again);
  CHECK(again->ok());
  CHECK(again->answers.size() == kNodes);
  for (int i = 0; i < kNodes; ++i) CHECK(keys.changes(i).size() == (i == away ? 1u : 2u));
  const auto reused = keys.request(15, KeyOp::kUse, new_key);
  REQUIRE(reused);
  CHECK(reused->ok());
  const auto removed = keys.request(15, KeyOp::kRemove, old_key);
  REQUIRE(removed);
  CHECK(removed->ok());
  CHECK(removed->answers.size() == kNodes);
  for (int i = 0; i < kNodes; ++i) CHECK(keys.changes(i).back() == std::vector<Key>{new_key});
}

TEST_CASE(
    "a member away during the use refuses the removal of its primary, and is fixed by a second "
    "use") {
  Rotation rotation("partitioned during use", 203, 0.02);
  auto& [old_key, new_key, sim, keys] = rotation;
  const int away = 13;
  const std::string away_name = sim.name(away);

  REQUIRE(keys.request(0, KeyOp::kInstall, new_key)->ok());
  sim.partition({away});
  const auto used = keys.request(0, KeyOp::kUse, new_key);
  REQUIRE(used);
  CHECK(KeyWatch::answer(*used, away_name)->outcome == KeyOutcome::kNoAnswer);
  sim.heal();
  REQUIRE(sim.run_until([&] { return sim.converged(); }, 120s));

  const auto removed = keys.request(0, KeyOp::kRemove, old_key);
  REQUIRE(removed);
  const KeyAnswer* refusal = KeyWatch::answer(*removed, away_name);
  REQUIRE(refusal != nullptr);
  CHECK(refusal->outcome == KeyOutcome::kFailed);
  CHECK(refusal->error == Errc::kKeyIsPrimary);
  CHECK(refusal->keys == std::vector<KeyId>{key_id(old_key), key_id(new_key)});
  check_all(*removed, KeyOutcome::kOk, {away_name});

  REQUIRE(keys.request(0, KeyOp::kUse, new_key)->ok());
  const auto again = keys.request(0, KeyOp::kRemove, old_key);
  REQUIRE(again);
  CHECK(again->ok());
  for (int i = 0; i < kNodes; ++i) CHECK(keys.changes(i).back() == std::vector<Key>{new_key});
}

TEST_CASE("a member left with only the removed key is cut off: unheard, then dead to everyone") {
  Rotation rotation("left with the removed key", 204, 0.0);
  auto& [old_key, new_key, sim, keys] = rotation;
  Deaths deaths(sim);
  const int away = 5;
  const std::string away_name = sim.name(away);

  sim.partition({away});
  REQUIRE(keys.request(1, KeyOp::kInstall, new_key));
  sim.heal();
  REQUIRE(sim.run_until([&] { return sim.converged(); }, 120s));
  const auto used = keys.request(1, KeyOp::kUse, new_key);
  REQUIRE(used);
  CHECK(KeyWatch::answer(*used, away_name)->error == Errc::kKeyNotInstalled);

  // The operator removes the old key anyway: the request is sealed under the
  // new key only, which the member cannot open.
  const auto removed = keys.request(1, KeyOp::kRemove, old_key);
  REQUIRE(removed);
  CHECK(KeyWatch::answer(*removed, away_name)->outcome == KeyOutcome::kNoAnswer);
  check_all(*removed, KeyOutcome::kOk, {away_name});
  CHECK(keys.changes(away).empty());

  std::uint64_t before = 0;
  for (int i = 0; i < kNodes; ++i) before += i == away ? 0 : refused(sim.node(i));
  REQUIRE(sim.run_until([&] { return deaths.of(away_name) == kNodes - 1; }, 120s));
  // Nor can it come back by itself: its re-joins (every rejoin_interval)
  // are refused.
  sim.run_for(60s);
  std::uint64_t after = 0;
  for (int i = 0; i < kNodes; ++i) after += i == away ? 0 : refused(sim.node(i));
  CHECK(after > before);
  for (int i = 0; i < kNodes; ++i) {
    if (i == away) continue;
    const Member* m = sim.node(i).member(away_name);
    CHECK((m == nullptr || m->state == MemberState::kDead));
  }
}

}  // namespace
}  // namespace mixlb::gossip
