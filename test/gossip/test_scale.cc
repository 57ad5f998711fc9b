// The scenarios at scale: a thousand members join through three seeds, a
// crash among them is seen by all, and a hundred members spend a virtual hour
// at 10 % packet loss without declaring anyone dead by mistake. The
// thousand-member hour belongs to the benchmark (gossip_bench).
#include <doctest/doctest.h>

#include <algorithm>
#include <ostream>  // doctest prints std::error_code through it
#include <vector>

#include "keyring.h"
#include "sim.h"
#include "swim.h"

namespace mixlb::gossip {
namespace {

using sim::Simulation;

TEST_CASE("1000 members join through 3 seeds; then one crashes and all see it dead") {
  Simulation sim("1000 members", sim::test_seed(201));
  sim.use_key(generate_key());
  // All 1000 start within the first second, joining through nodes 0, 1, 2.
  sim::start_cluster(sim, 1000, 3, 1s);
  sim.run_for(1s);
  REQUIRE(sim.run_until([&] { return sim.size() == 1000 && sim.converged(); }, 60s));
  MESSAGE("1000 members converged after " << sim::seconds(sim.elapsed()) << " s");
  CHECK(sim.elapsed() <= 30s);

  sim.run_for(20s);
  sim::DeathWatch watch(sim, 7);
  sim.crash(7);
  REQUIRE(sim.run_until([&] { return watch.all_saw(); }, 60s));
  Duration last{};
  for (const auto& [observer, when] : watch.seen()) last = std::max(last, when);
  MESSAGE("every member marked node-7 dead within " << sim::seconds(last) << " s");
  CHECK(watch.seen().size() == 999);
  CHECK(last <= 30s);
}

TEST_CASE("100 members at 10 % loss for a virtual hour: no false death") {
  Simulation sim("an hour at 10 % loss", sim::test_seed(202));
  sim.use_key(generate_key());
  sim.set_loss(0.1);
  sim::start_cluster(sim, 100, 3, 1s);
  sim.run_for(1s);
  REQUIRE(sim.run_until([&] { return sim.size() == 100 && sim.converged(); }, 60s));
  std::uint64_t deaths = 0, suspicions = 0;
  sim.on_event = [&](int, const Event& event) {
    if (const auto* e = std::get_if<MemberEvent>(&event)) {
      deaths += e->kind == MemberEventKind::kDead ? 1 : 0;
      suspicions += e->kind == MemberEventKind::kSuspect ? 1 : 0;
    }
  };
  sim.run_for(3600s);
  MESSAGE(suspicions << " suspect events, every one refuted");
  CHECK(suspicions > 0);  // the loss is real: members were suspected...
  CHECK(deaths == 0);     // ...and none was declared dead
  CHECK(sim.converged());
}

}  // namespace
}  // namespace mixlb::gossip
