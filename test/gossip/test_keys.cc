// Key requests in small, exact situations: a lone origin, the refusals that
// send nothing, one request at a time, a request applied once however many
// copies arrive, answers taken only from members and for pending requests, a
// lost answer recovered by the origin's re-ask, the removed key opening
// nothing, the failures a member reports (a use of a key it lacks, the
// removal of its primary, an install on a full ring), and malformed key
// packets dropped and counted.
#include <doctest/doctest.h>

#include <functional>
#include <ostream>  // doctest prints std::error_code through it
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

Key fixed_key(std::uint8_t fill) {
  Key key{};
  key.fill(fill);
  return key;
}

const Key kOld = fixed_key(0x11);
const Key kNew = fixed_key(0x22);

// n nodes sealing with kOld, joined through node 0 and converged.
Simulation keyed_cluster(const std::string& label, int n,
                         const std::function<void(Config&)>& tweak = {}) {
  Simulation sim(label, sim::test_seed(11));
  sim.use_key(kOld);
  if (tweak) tweak(sim.base_config());
  for (int i = 0; i < n; ++i) sim.add_node();
  for (int i = 1; i < n; ++i) sim.join(i, {0});
  REQUIRE(sim.run_until([&] { return sim.converged(); }, 10s));
  return sim;
}

std::uint64_t drops(Swim& node, DropReason reason) {
  return node.stats().drops[static_cast<std::size_t>(reason)];
}

// A datagram sealed with `key` under the simulation's cluster name.
Bytes sealed(const Key& key, const Bytes& plain) {
  Keyring ring(Simulation::kClusterName, key);
  return ring.seal(plain);
}
Bytes sealed(const Key& key, const std::vector<Message>& messages) {
  auto plain = encode_packet(messages);
  REQUIRE(plain);
  return sealed(key, *plain);
}

// Fills the node's ring up to kMaxKeys with keys of its own.
void fill_ring(Simulation& sim, int index) {
  sim.input(index, [&](Swim& node) {
    for (std::uint8_t fill = 0x80; node.keyring()->keys().size() < kMaxKeys; ++fill) {
      REQUIRE_FALSE(node.change_key(KeyOp::kInstall, fixed_key(fill), sim.now()));
    }
  });
}

TEST_CASE("a lone origin applies its request and reports at once, with its keys by id") {
  Simulation sim("lone origin", sim::test_seed(11));
  sim.use_key(kOld);
  sim.add_node();
  KeyWatch keys(sim);
  const auto installed = keys.request(0, KeyOp::kInstall, kNew, 0s);
  REQUIRE(installed);
  CHECK(installed->op == KeyOp::kInstall);
  CHECK(installed->key == key_id(kNew));
  CHECK(installed->elapsed == Duration::zero());
  CHECK_FALSE(installed->timed_out);
  REQUIRE(installed->answers.size() == 1);
  CHECK(installed->answers[0].member == sim.name(0));
  CHECK(installed->answers[0].outcome == KeyOutcome::kOk);
  CHECK(to_string(installed->answers[0].outcome) == "ok");
  CHECK(installed->answers[0].keys == std::vector<KeyId>{key_id(kOld), key_id(kNew)});
  REQUIRE(keys.changes(0).size() == 1);
  CHECK(keys.changes(0)[0] == std::vector<Key>{kOld, kNew});

  // Listing and installing again change nothing, and say so by not
  // reporting a change.
  CHECK(keys.request(0, KeyOp::kList, std::nullopt, 0s)->ok());
  CHECK(keys.request(0, KeyOp::kInstall, kNew, 0s)->ok());
  CHECK(keys.changes(0).size() == 1);
  CHECK(sim.node(0).stats().datagrams_sent == 0);
}

TEST_CASE(
    "refused requests send nothing and change nothing: wrong arguments, self-cutting, a full ring, "
    "plaintext, left") {
  Simulation sim = keyed_cluster("refusals", 2);
  fill_ring(sim, 0);
  Swim& origin = sim.node(0);
  origin.take_key_events();
  const std::vector<Key> ring(origin.keyring()->keys().begin(), origin.keyring()->keys().end());
  const auto sent = origin.stats().datagrams_sent;
  const auto now = sim.now();
  CHECK(origin.start_key_request(KeyOp::kList, kNew, now).error() == Errc::kBadValue);
  CHECK(origin.start_key_request(KeyOp::kInstall, std::nullopt, now).error() == Errc::kBadValue);
  // A use of a key this node lacks, the removal of its own primary, an
  // install on its full ring.
  CHECK(origin.start_key_request(KeyOp::kUse, kNew, now).error() == Errc::kKeyNotInstalled);
  CHECK(origin.start_key_request(KeyOp::kRemove, kOld, now).error() == Errc::kKeyIsPrimary);
  CHECK(origin.start_key_request(KeyOp::kInstall, kNew, now).error() == Errc::kKeyringFull);
  CHECK(origin.stats().datagrams_sent == sent);
  CHECK(origin.stats().key_requests_started == 0);
  CHECK(origin.stats().key_requests_applied == 0);
  CHECK(origin.take_key_events().empty());
  CHECK(std::equal(ring.begin(), ring.end(), origin.keyring()->keys().begin(),
                   origin.keyring()->keys().end()));
  // The same request is fine once the ring has room (nothing sent: the
  // datagrams wait for the simulation).
  REQUIRE_FALSE(origin.change_key(KeyOp::kRemove, ring.back(), now));
  CHECK(origin.start_key_request(KeyOp::kInstall, kNew, now));

  origin.leave(now);
  CHECK(origin.start_key_request(KeyOp::kList, std::nullopt, now).error() == Errc::kLeft);

  Simulation plain("plaintext", sim::test_seed(11));
  plain.add_node();
  CHECK(plain.node(0).start_key_request(KeyOp::kList, std::nullopt, plain.now()).error() ==
        Errc::kNoKeyring);
  CHECK(plain.node(0).change_key(KeyOp::kInstall, kNew, plain.now()) == Errc::kNoKeyring);
  CHECK(plain.node(0).keyring() == nullptr);
}

TEST_CASE("one request at a time: a second one is refused until the first has ended") {
  Simulation sim = keyed_cluster("busy", 2);
  KeyWatch keys(sim);
  sim.input(0, [&](Swim& node) {
    REQUIRE(node.start_key_request(KeyOp::kInstall, kNew, sim.now()));
    // The use that depends on the install must wait for its result.
    CHECK(node.start_key_request(KeyOp::kUse, kNew, sim.now()).error() == Errc::kBusy);
    CHECK(node.start_key_request(KeyOp::kList, std::nullopt, sim.now()).error() == Errc::kBusy);
    CHECK(node.stats().key_requests_started == 1);
  });
  sim.run_for(1s);  // node 1 answers: the install has ended
  REQUIRE(keys.changes(1).size() == 1);
  const auto used = keys.request(0, KeyOp::kUse, kNew);
  REQUIRE(used);
  CHECK(used->ok());
  CHECK(used->answers.size() == 2);
}

TEST_CASE("a request is applied once however many copies arrive; a re-ask gets the kept answer") {
  Simulation sim = keyed_cluster("applied once", 3);
  KeyWatch keys(sim);
  // From an origin outside the simulated network, so its answers go nowhere
  // and only the members' own counts tell.
  const Address elsewhere = Address::v4(10, 99, 0, 1, 7946);
  const KeyId old_id = key_id(kOld);
  const KeyRequest request{"operator", 99, false, KeyOp::kInstall, elsewhere, old_id, kNew};
  for (int copy = 0; copy < 3; ++copy) sim.inject(elsewhere, 1, sealed(kOld, {request}));
  sim.run_for(5s);
  for (int i = 0; i < 3; ++i) {
    CAPTURE(i);
    // The first copy at node 1, the gossip of it everywhere else.
    CHECK(sim.node(i).stats().key_requests_applied == 1);
    CHECK(sim.node(i).stats().key_answers_sent == 1);
    REQUIRE(keys.changes(i).size() == 1);
    CHECK(keys.changes(i)[0] == std::vector<Key>{kOld, kNew});
  }
  // Answered under each key the member holds now.
  const auto sent = sim.node(1).stats().datagrams_sent;
  KeyRequest reask = request;
  reask.reask = true;
  sim.inject(elsewhere, 1, sealed(kOld, {reask}));
  sim.run_for(1s);
  CHECK(sim.node(1).stats().key_requests_applied == 1);
  CHECK(sim.node(1).stats().key_answers_sent == 2);
  CHECK(sim.node(1).stats().datagrams_sent >= sent + 2);
  CHECK(keys.changes(1).size() == 1);
}

TEST_CASE("answers count only from members, for a pending request, once each") {
  // Suspicions that outlast the request: node 2 stays alive in the
  // origin's view, so only the timeout ends the request.
  Simulation sim = keyed_cluster("answers", 3, [](Config& c) { c.suspicion_mult = 30; });
  KeyWatch keys(sim);
  sim.crash(2);  // it will not answer
  std::uint64_t id = 0;
  sim.input(
      0, [&](Swim& node) { id = *node.start_key_request(KeyOp::kList, std::nullopt, sim.now()); });
  const Bytes ids(kKeyIdBytes, 0);
  // A stranger answering, a member answering a request that is not pending,
  // and (below) node 1's real answer arriving twice.
  sim.inject(sim.address(1), 0, sealed(kOld, {KeyResponse{id, "mallory", KeyStatus::kOk, ids}}));
  sim.inject(sim.address(1), 0,
             sealed(kOld, {KeyResponse{id + 1000, sim.name(1), KeyStatus::kOk, ids}}));
  sim.run_for(2s);
  sim.inject(sim.address(1), 0,
             sealed(kOld, {KeyResponse{id, sim.name(1), KeyStatus::kKeyringFull, ids}}));
  std::optional<KeyResult> result;
  sim.on_key_event = [&, chained = sim.on_key_event](int observer, const KeyEvent& event) {
    chained(observer, event);
    if (const auto* r = std::get_if<KeyResult>(&event); r && observer == 0) result = *r;
  };
  REQUIRE(sim.run_until([&] { return result.has_value(); }, 20s));
  CHECK(sim.node(0).stats().key_answers_ignored == 2);
  CHECK(sim.node(0).stats().key_answers_received == 1);
  CHECK(result->timed_out);
  CHECK(result->elapsed == sim.node(0).config().key_request_timeout);
  REQUIRE(result->answers.size() == 3);
  CHECK(KeyWatch::answer(*result, "mallory") == nullptr);
  CHECK(KeyWatch::answer(*result, sim.name(0))->outcome == KeyOutcome::kOk);
  // Its first answer stands; the forged second one changed nothing.
  CHECK(KeyWatch::answer(*result, sim.name(1))->outcome == KeyOutcome::kOk);
  CHECK(KeyWatch::answer(*result, sim.name(1))->keys == std::vector<KeyId>{key_id(kOld)});
  CHECK(KeyWatch::answer(*result, sim.name(2))->outcome == KeyOutcome::kNoAnswer);
  CHECK(to_string(KeyOutcome::kNoAnswer) == "no answer");
  CHECK(result->count(KeyOutcome::kNoAnswer) == 1);
  CHECK_FALSE(result->ok());
}

TEST_CASE("a lost answer is recovered by the origin's re-ask, without applying twice") {
  Simulation sim = keyed_cluster("re-ask", 3);
  KeyWatch keys(sim);
  // Everything node 2 sends node 0 is lost for 1.5 s: its first answer too.
  sim.set_link_loss(2, 0, 1.0);
  sim.at(sim.elapsed() + 1500ms, [&] { sim.set_link_loss(2, 0, 0.0); });
  const auto result = keys.request(0, KeyOp::kInstall, kNew);
  REQUIRE(result);
  CHECK(result->ok());
  CHECK_FALSE(result->timed_out);
  CHECK(result->elapsed > 1500ms);
  CHECK(result->elapsed < 3s);
  CHECK(sim.node(2).stats().key_requests_applied == 1);
  CHECK(sim.node(2).stats().key_answers_sent >= 2);
  CHECK(keys.changes(2).size() == 1);
}

TEST_CASE("after a rotation by requests, the removed key opens nothing") {
  Simulation sim = keyed_cluster("removed key", 3);
  KeyWatch keys(sim);
  CHECK(keys.request(1, KeyOp::kInstall, kNew)->ok());
  CHECK(keys.request(1, KeyOp::kUse, kNew)->ok());
  const auto removed = keys.request(1, KeyOp::kRemove, kOld);
  REQUIRE(removed);
  CHECK(removed->ok());
  for (const auto& answer : removed->answers)
    CHECK(answer.keys == std::vector<KeyId>{key_id(kNew)});
  for (int i = 0; i < 3; ++i) {
    CAPTURE(i);
    CHECK(keys.changes(i) == std::vector<std::vector<Key>>{{kOld, kNew}, {kNew, kOld}, {kNew}});
  }
  const auto before = drops(sim.node(2), DropReason::kNoKeyAuthenticates);
  sim.inject(sim.address(0), 2, sealed(kOld, {Ping{1, sim.name(2), sim.name(0)}}));
  sim.run_for(100ms);
  CHECK(drops(sim.node(2), DropReason::kNoKeyAuthenticates) == before + 1);
  // The new key still opens, and a removal repeated finds nothing to do.
  sim.inject(sim.address(0), 2, sealed(kNew, {Ping{2, sim.name(2), sim.name(0)}}));
  sim.run_for(100ms);
  CHECK(drops(sim.node(2), DropReason::kNoKeyAuthenticates) == before + 1);
  CHECK(sim.node(2).change_key(KeyOp::kRemove, kOld, sim.now()) == std::error_code());
}

TEST_CASE("a member reports what it cannot do: use a key it lacks, remove its primary") {
  Simulation sim = keyed_cluster("member failures", 3);
  KeyWatch keys(sim);
  // Node 2 is away for the install.
  sim.partition({2});
  const auto installed = keys.request(0, KeyOp::kInstall, kNew);
  REQUIRE(installed);
  CHECK(KeyWatch::answer(*installed, sim.name(2))->outcome == KeyOutcome::kNoAnswer);
  sim.heal();
  REQUIRE(sim.run_until([&] { return sim.converged(); }, 60s));

  // The use reaches node 2 under the old key: it answers, and refuses.
  const auto used = keys.request(0, KeyOp::kUse, kNew);
  REQUIRE(used);
  CHECK_FALSE(used->timed_out);
  const KeyAnswer* lacking = KeyWatch::answer(*used, sim.name(2));
  REQUIRE(lacking != nullptr);
  CHECK(lacking->outcome == KeyOutcome::kFailed);
  CHECK(lacking->error == Errc::kKeyNotInstalled);
  CHECK(lacking->error.message() == "key is not installed");
  CHECK(lacking->keys == std::vector<KeyId>{key_id(kOld)});
  CHECK(used->count(KeyOutcome::kOk) == 2);

  // Installed now, but its primary is still the old key: the removal of
  // the old key is refused there, and said so.
  CHECK(keys.request(1, KeyOp::kInstall, kNew)->ok());
  const auto removed = keys.request(1, KeyOp::kRemove, kOld);
  REQUIRE(removed);
  const KeyAnswer* primary = KeyWatch::answer(*removed, sim.name(2));
  REQUIRE(primary != nullptr);
  CHECK(primary->outcome == KeyOutcome::kFailed);
  CHECK(primary->error == Errc::kKeyIsPrimary);
  CHECK(primary->keys == std::vector<KeyId>{key_id(kOld), key_id(kNew)});
  CHECK(removed->count(KeyOutcome::kOk) == 2);
  // Its first answer opened at the origin, which holds the old key no more:
  // the answer went under the request key too, so no re-ask was needed.
  CHECK(removed->elapsed < sim.node(1).config().key_request_retry);

  // The use and the removal repeated finish the rotation everywhere.
  for (KeyOp op : {KeyOp::kUse, KeyOp::kRemove}) {
    const auto repeated = keys.request(0, op, op == KeyOp::kUse ? kNew : kOld);
    REQUIRE(repeated);
    CHECK(repeated->ok());
    CHECK(repeated->answers.size() == 3);
  }
  for (int i = 0; i < 3; ++i) CHECK(keys.changes(i).back() == std::vector<Key>{kNew});
}

TEST_CASE("a member with a full ring refuses an install, and says which keys it holds") {
  Simulation sim = keyed_cluster("full ring", 3);
  fill_ring(sim, 2);
  KeyWatch keys(sim);
  const auto installed = keys.request(0, KeyOp::kInstall, kNew);
  REQUIRE(installed);
  CHECK_FALSE(installed->timed_out);
  CHECK(installed->count(KeyOutcome::kOk) == 2);
  const KeyAnswer* full = KeyWatch::answer(*installed, sim.name(2));
  REQUIRE(full != nullptr);
  CHECK(full->outcome == KeyOutcome::kFailed);
  CHECK(full->error == Errc::kKeyringFull);
  CHECK(full->error.message() == "the keyring is full");
  CHECK(full->keys.size() == kMaxKeys);
  CHECK(full->keys.front() == key_id(kOld));
  CHECK(keys.changes(2).empty());
  CHECK(sim.node(2).keyring()->find(key_id(kNew)) == nullptr);
}

TEST_CASE("malformed key packets, sealed with the cluster key, are dropped and counted") {
  Simulation sim = keyed_cluster("malformed key packets", 2);
  KeyWatch keys(sim);
  const KeyId old_id = key_id(kOld);
  auto valid = [&](KeyOp op, ByteView key) {
    auto bytes = encode_packet(
        std::vector<Message>{KeyRequest{"node-0", 7, false, op, sim.address(0), old_id, key}});
    REQUIRE(bytes);
    return *bytes;
  };
  // version(1) type(1) length(2) origin(7) id(8) flags(1) -> op at 20; the
  // key field is last.
  std::vector<Bytes> bad;
  Bytes op = valid(KeyOp::kUse, ByteView(key_id(kNew)));
  op[20] = 9;  // no such operation
  bad.push_back(op);
  Bytes size = valid(KeyOp::kUse, ByteView(key_id(kNew)));
  size[20] = static_cast<std::uint8_t>(KeyOp::kInstall);  // an 8-byte "key"
  bad.push_back(size);
  Bytes flags = valid(KeyOp::kList, {});
  flags[19] = 0x80;
  bad.push_back(flags);
  Bytes cut = valid(KeyOp::kInstall, ByteView(kNew));
  cut.pop_back();  // the body is shorter than its length says
  bad.push_back(cut);
  auto response = encode_packet(
      std::vector<Message>{KeyResponse{7, sim.name(1), KeyStatus::kOk, ByteView(old_id)}});
  REQUIRE(response);
  // version(1) type(1) length(2) id(8) member(7) -> status at 19, count at 20.
  Bytes count = *response;
  count[20] = 2;  // two ids, one present
  bad.push_back(count);
  Bytes status = *response;
  status[19] = 200;
  bad.push_back(status);

  const auto before = drops(sim.node(1), DropReason::kMalformed);
  for (const auto& bytes : bad) sim.inject(sim.address(0), 1, sealed(kOld, bytes));
  sim.run_for(1s);
  CHECK(drops(sim.node(1), DropReason::kMalformed) == before + bad.size());
  CHECK(sim.node(1).stats().key_requests_applied == 0);
  CHECK(sim.node(1).stats().key_answers_sent == 0);
  CHECK(sim.node(1).stats().key_answers_ignored == 0);
  CHECK(keys.changes(1).empty());
  // The same bytes unmangled are taken.
  sim.inject(sim.address(0), 1, sealed(kOld, valid(KeyOp::kInstall, ByteView(kNew))));
  sim.run_for(1s);
  CHECK(sim.node(1).stats().key_requests_applied == 1);
  CHECK(keys.changes(1).size() == 1);
}

}  // namespace
}  // namespace mixlb::gossip
