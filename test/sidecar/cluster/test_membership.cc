// What a node publishes in its gossip metadata, and how the gossip view
// becomes the member set and the serving sets the tables are built from.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <unordered_map>

#include "cluster/member_metadata.h"
#include "cluster/membership.h"
#include "cluster/node_id.h"
#include "settings.h"

namespace mixlb {
namespace {

using namespace std::chrono_literals;
using gossip::MemberEventKind;
using gossip::MemberState;

MemberMetadata meta(const char* address, std::uint32_t weight, bool healthy,
                    std::vector<std::uint32_t> vips) {
  MemberMetadata m;
  m.weight = weight;
  m.mac = {0x02, 0, 0, 0, 0, 0x11};
  m.address = *Address::parse(address);
  m.app_healthy = healthy;
  m.vips = std::move(vips);
  return m;
}

std::vector<VipEntry> vips() {
  VipConfig tcp;
  tcp.address = *Address::parse("10.100.0.1");
  tcp.ports = {80, 443};
  VipConfig udp;
  udp.address = *Address::parse("10.100.0.1");
  udp.protocol = 17;
  udp.ports = {53};
  return expand_vips(std::vector<VipConfig>{tcp, udp});
}

gossip::MemberEvent event(MemberEventKind kind, const std::string& name, MemberState state,
                          std::uint32_t incarnation, const std::vector<std::uint8_t>& metadata,
                          std::chrono::steady_clock::time_point when = std::chrono::steady_clock::now()) {
  gossip::Member m;
  m.name = name;
  m.address = gossip::Address::v4(10, 0, 0, static_cast<std::uint8_t>(name.back()), 7946);
  m.metadata = metadata;
  m.incarnation = incarnation;
  m.state = state;
  m.state_changed = when;
  return gossip::MemberEvent{kind, m};
}

std::vector<std::string> names(const std::vector<Member>& members) {
  std::vector<std::string> out;
  for (const auto& m : members) out.push_back(m.name);
  return out;
}

using Names = std::vector<std::string>;

}  // namespace

TEST_SUITE("member metadata") {
  TEST_CASE("round trip for IPv4 and IPv6 nodes, healthy or not, with and without VIPs") {
    for (const char* address : {"10.0.0.11", "fd00::11"}) {
      for (bool healthy : {true, false}) {
        for (std::vector<std::uint32_t> tags : {std::vector<std::uint32_t>{},
                                                std::vector<std::uint32_t>{1, 0xdeadbeef, 7}}) {
          const MemberMetadata m = meta(address, healthy ? 3 : 0, healthy, tags);
          const auto bytes = encode_metadata(m);
          CHECK(bytes.size() == 13 + (m.address.is_v6() ? 16 : 4) + 4 * tags.size());
          const auto back = decode_metadata(bytes);
          REQUIRE(back.has_value());
          CHECK(*back == m);
        }
      }
    }
  }

  TEST_CASE("the most VIP ports that fit stay under the gossip bound; more are refused") {
    std::vector<std::uint32_t> tags(kMaxPublishedVips, 9);
    CHECK(encode_metadata(meta("fd00::1", 1, true, tags)).size() <= kMaxMetadataSize);
    tags.push_back(9);
    CHECK_THROWS_AS(encode_metadata(meta("fd00::1", 1, true, tags)), std::length_error);
  }

  TEST_CASE("malformed metadata is refused with the field and the offset") {
    const auto good = encode_metadata(meta("10.0.0.11", 1, true, {5, 6}));
    struct Case {
      const char* what;
      std::vector<std::uint8_t> bytes;
      const char* error;
    };
    auto with = [&](std::size_t at, std::uint8_t value) {
      auto b = good;
      b[at] = value;
      return b;
    };
    auto cut = [&](std::size_t n) { return std::vector<std::uint8_t>(good.begin(), good.begin() + n); };
    auto longer = good;
    longer.push_back(0);
    const Case cases[] = {
        {"empty", {}, "metadata: magic: needs 1 byte(s), 0 left at offset 0"},
        {"another program's", with(0, 0x7b), "metadata: magic: 0x7b is not mixlb's 0x4d at offset 0"},
        {"a newer version", with(1, 2), "metadata: version: 2 is not the version this node reads (1) at offset 1"},
        {"weight over 100", with(3, 101), "metadata: weight: 101 is over the maximum 100 at offset 2"},
        {"family 5", with(10, 5), "metadata: address family: 5 is neither 4 nor 6 at offset 10"},
        {"unknown flags", with(15, 7), "metadata: flags: unknown bits 0x04 at offset 15"},
        {"a VIP tag cut short", cut(good.size() - 2), "metadata: VIP tag: needs 4 byte(s), 2 left at offset 21"},
        {"the address cut short", cut(12), "metadata: address: needs 4 byte(s), 1 left at offset 11"},
        {"a byte too many", longer, "metadata: end: 1 byte(s) after the last field at offset 25"},
    };
    for (const auto& c : cases) {
      CAPTURE(c.what);
      const auto r = decode_metadata(c.bytes);
      REQUIRE_FALSE(r.has_value());
      CHECK(r.error() == c.error);
    }
  }

  TEST_CASE("VIP tags tell ports, protocols and families apart and agree across nodes") {
    const auto a = make_vip_key(*Address::parse("10.100.0.1"), 80, 6);
    CHECK(vip_tag(a) == vip_tag(make_vip_key(*Address::parse("10.100.0.1"), 80, 6)));
    CHECK(vip_tag(a) != vip_tag(make_vip_key(*Address::parse("10.100.0.1"), 81, 6)));
    CHECK(vip_tag(a) != vip_tag(make_vip_key(*Address::parse("10.100.0.1"), 80, 17)));
    CHECK(vip_tag(a) != vip_tag(make_vip_key(*Address::parse("10.100.0.2"), 80, 6)));
    CHECK(vip_tag(a) != vip_tag(make_vip_key(*Address::parse("::a64:1"), 80, 6)));
  }
}

TEST_SUITE("membership") {
  TEST_CASE("alive members serving a VIP port are its backends; suspects stay, the dead go") {
    const auto v = vips();
    const auto http = vip_tag(v[0].key), https = vip_tag(v[1].key), dns = vip_tag(v[2].key);
    Membership ms("mix2", v);
    CHECK(ms.set_self(meta("10.0.0.12", 1, true, {http, https, dns}), gossip::Address::v4(10, 0, 0, 12, 7946)));
    CHECK(names(ms.members()) == Names{"mix2"});

    // mix1 serves only HTTP; mix3 serves everything but its app is failing.
    CHECK(ms.apply(event(MemberEventKind::kJoined, "mix1", MemberState::kAlive, 1,
                         encode_metadata(meta("10.0.0.11", 2, true, {http})))));
    CHECK(ms.apply(event(MemberEventKind::kJoined, "mix3", MemberState::kAlive, 1,
                         encode_metadata(meta("10.0.0.13", 1, false, {http, https, dns})))));
    const auto members = ms.members();
    CHECK(names(members) == Names{"mix2", "mix1", "mix3"});  // this node first
    CHECK(members[0].self);
    CHECK(members[1].weight == 2);
    CHECK(members[1].address == *Address::parse("10.0.0.11"));
    CHECK(members[1].id == node_id_for("mix1"));
    auto entries = ms.vip_entries();
    REQUIRE(entries.size() == 3);
    CHECK(entries[0].serving == Names{"mix1", "mix2"});
    CHECK(entries[1].serving == Names{"mix2"});
    CHECK(entries[2].serving == Names{"mix2"});

    // mix3's app recovers: a metadata update.
    CHECK(ms.apply(event(MemberEventKind::kUpdated, "mix3", MemberState::kAlive, 2,
                         encode_metadata(meta("10.0.0.13", 1, true, {http, https, dns})))));
    CHECK(ms.vip_entries()[2].serving == Names{"mix2", "mix3"});
    // The same state again changes nothing.
    CHECK_FALSE(ms.apply(event(MemberEventKind::kUpdated, "mix3", MemberState::kAlive, 2,
                               encode_metadata(meta("10.0.0.13", 1, true, {http, https, dns})))));

    // A suspect keeps its place; the state is recorded.
    CHECK_FALSE(ms.apply(event(MemberEventKind::kSuspect, "mix3", MemberState::kSuspect, 2, {})));
    CHECK(ms.records().at("mix3").state == MemberState::kSuspect);
    CHECK(ms.vip_entries()[2].serving == Names{"mix2", "mix3"});
    // Death takes it out of the tables and of every serving set; it stays
    // departed (in the node map, for its flows) during the grace period.
    CHECK(ms.apply(event(MemberEventKind::kDead, "mix3", MemberState::kDead, 2, {})));
    CHECK(names(ms.members()) == Names{"mix2", "mix1", "mix3"});
    CHECK(ms.members().back().departed);
    CHECK(ms.in_tables() == Names{"mix1", "mix2"});
    CHECK(ms.vip_entries()[2].serving == Names{"mix2"});
    // ... and a left member the same.
    CHECK(ms.apply(event(MemberEventKind::kLeft, "mix1", MemberState::kLeft, 1, {})));
    CHECK(ms.vip_entries()[0].serving == Names{"mix2"});
    // Back from the dead with a higher incarnation.
    CHECK(ms.apply(event(MemberEventKind::kJoined, "mix3", MemberState::kAlive, 3,
                         encode_metadata(meta("10.0.0.13", 1, true, {dns})))));
    CHECK(ms.vip_entries()[2].serving == Names{"mix2", "mix3"});
    CHECK(ms.records().at("mix3").incarnation == 3);
  }

  TEST_CASE("a dead or left member keeps its flows for the grace period, then goes") {
    const auto t0 = std::chrono::steady_clock::now();
    Membership ms("mix1", vips(), 30s);
    ms.set_self(meta("10.0.0.11", 1, true, {vip_tag(vips()[0].key)}), {});
    const auto md2 = encode_metadata(meta("10.0.0.12", 3, true, {vip_tag(vips()[0].key)}));
    const auto md3 = encode_metadata(meta("10.0.0.13", 1, true, {vip_tag(vips()[0].key)}));
    ms.apply(event(MemberEventKind::kJoined, "mix2", MemberState::kAlive, 1, md2, t0), t0);
    ms.apply(event(MemberEventKind::kJoined, "mix3", MemberState::kAlive, 1, md3, t0), t0);
    CHECK_FALSE(ms.next_grace_end(t0).has_value());

    // mix2 dies at t0+1s, mix3 leaves at t0+5s: both gone for new flows at once.
    CHECK(ms.apply(event(MemberEventKind::kDead, "mix2", MemberState::kDead, 1, {}, t0 + 1s), t0 + 1s));
    CHECK(ms.apply(event(MemberEventKind::kLeft, "mix3", MemberState::kLeft, 1, {}, t0 + 5s), t0 + 5s));
    CHECK(ms.vip_entries()[0].serving == Names{"mix1"});
    auto members = ms.members(t0 + 10s);
    REQUIRE(names(members) == Names{"mix1", "mix2", "mix3"});
    CHECK_FALSE(members[0].departed);
    CHECK(members[1].departed);
    CHECK(members[1].weight == 0);
    CHECK(members[1].address == *Address::parse("10.0.0.12"));
    CHECK(members[2].departed);
    CHECK(ms.next_grace_end(t0 + 10s) == t0 + 31s);

    // mix2's grace runs out first, then mix3's.
    CHECK(names(ms.members(t0 + 32s)) == Names{"mix1", "mix3"});
    CHECK(ms.next_grace_end(t0 + 32s) == t0 + 35s);
    CHECK(names(ms.members(t0 + 36s)) == Names{"mix1"});
    CHECK_FALSE(ms.next_grace_end(t0 + 36s).has_value());

    // A member back within its grace is a member again, nothing lost.
    CHECK(ms.apply(event(MemberEventKind::kJoined, "mix3", MemberState::kAlive, 2, md3, t0 + 36s), t0 + 36s));
    members = ms.members(t0 + 36s);
    REQUIRE(names(members) == Names{"mix1", "mix3"});
    CHECK_FALSE(members[1].departed);
    CHECK(ms.vip_entries()[0].serving == Names{"mix1", "mix3"});
  }

  TEST_CASE("a member restarting its sidecar stays in the node map but gets no new flows") {
    Membership ms("mix1", vips());
    ms.set_self(meta("10.0.0.11", 1, true, {vip_tag(vips()[0].key)}), {});
    auto m2 = meta("10.0.0.12", 1, true, {vip_tag(vips()[0].key)});
    ms.apply(event(MemberEventKind::kJoined, "mix2", MemberState::kAlive, 1, encode_metadata(m2)));
    CHECK(ms.vip_entries()[0].serving == Names{"mix1", "mix2"});
    m2.restarting = true;
    CHECK(decode_metadata(encode_metadata(m2))->restarting);
    CHECK(ms.apply(event(MemberEventKind::kUpdated, "mix2", MemberState::kAlive, 2, encode_metadata(m2))));
    CHECK(ms.vip_entries()[0].serving == Names{"mix1"});
    CHECK(ms.in_tables() == Names{"mix1", "mix2"});
    // Its successor publishes without the flag: new flows again.
    m2.restarting = false;
    CHECK(ms.apply(event(MemberEventKind::kUpdated, "mix2", MemberState::kAlive, 3, encode_metadata(m2))));
    CHECK(ms.vip_entries()[0].serving == Names{"mix1", "mix2"});
  }

  TEST_CASE("drained and unhealthy nodes stay members; nobody serving leaves an empty set") {
    const auto v = vips();
    const auto http = vip_tag(v[0].key);
    Membership ms("mix1", v);
    ms.set_self(meta("10.0.0.11", 1, true, {http}), {});
    // Draining this node is a change of the tables' inputs.
    CHECK(ms.set_self(meta("10.0.0.11", 0, true, {http}), {}));
    CHECK(ms.members()[0].weight == 0);
    CHECK(ms.vip_entries()[0].serving == Names{"mix1"});  // still serving; ClusterSync gives it no slots
    CHECK(ms.set_self(meta("10.0.0.11", 0, false, {http}), {}));
    CHECK(names(ms.members()) == Names{"mix1"});
    const auto entries = ms.vip_entries();
    REQUIRE(entries[0].serving.has_value());  // an explicit empty set, not "every member"
    CHECK(entries[0].serving->empty());
  }

  TEST_CASE("a member whose metadata does not decode is left out, with the reason, until it does") {
    const auto v = vips();
    Membership ms("mix1", v);
    ms.set_self(meta("10.0.0.11", 1, true, {}), {});
    CHECK_FALSE(ms.apply(event(MemberEventKind::kJoined, "mix2", MemberState::kAlive, 1, {1, 2, 3})));
    CHECK(names(ms.members()) == Names{"mix1"});
    CHECK(ms.records().at("mix2").problem == "metadata: magic: 0x01 is not mixlb's 0x4d at offset 0");
    CHECK(ms.in_tables() == Names{"mix1"});
    CHECK(ms.apply(event(MemberEventKind::kUpdated, "mix2", MemberState::kAlive, 2,
                         encode_metadata(meta("10.0.0.12", 1, true, {})))));
    CHECK(ms.records().at("mix2").problem.empty());
    CHECK(ms.in_tables() == Names{"mix1", "mix2"});
  }

  TEST_CASE("of two names with the same node id the smaller one is in the tables, on every node") {
    // Find a collision of the 32-bit id among generated names.
    std::unordered_map<std::uint32_t, std::string> seen;
    std::string a, b;
    for (int i = 0; a.empty(); ++i) {
      std::string name = "node-" + std::to_string(i);
      auto [it, fresh] = seen.emplace(node_id_for(name), name);
      if (!fresh) {
        a = std::min(it->second, name);
        b = std::max(it->second, name);
      }
    }
    REQUIRE(node_id_for(a) == node_id_for(b));
    const auto md = encode_metadata(meta("10.0.0.20", 1, true, {}));
    // Two nodes hear of the pair in opposite orders and agree.
    Membership first("zz-self", vips()), second("zz-self", vips());
    first.set_self(meta("10.0.0.99", 1, true, {}), {});
    second.set_self(meta("10.0.0.99", 1, true, {}), {});
    first.apply(event(MemberEventKind::kJoined, a, MemberState::kAlive, 1, md));
    first.apply(event(MemberEventKind::kJoined, b, MemberState::kAlive, 1, md));
    second.apply(event(MemberEventKind::kJoined, b, MemberState::kAlive, 1, md));
    second.apply(event(MemberEventKind::kJoined, a, MemberState::kAlive, 1, md));
    CHECK(names(first.members()) == Names{"zz-self", a});
    CHECK(names(second.members()) == Names{"zz-self", a});
    CHECK(first.records().at(b).problem.find("node id") != std::string::npos);
    // When the winner dies the other one takes its place.
    CHECK(first.apply(event(MemberEventKind::kDead, a, MemberState::kDead, 1, {})));
    CHECK(names(first.members()) == Names{"zz-self", b});
  }

  TEST_CASE("records of members dead for long are forgotten; events about this node's name are ignored") {
    const auto t0 = std::chrono::steady_clock::now();
    Membership ms("mix1", vips(), 1min, 10min);
    ms.set_self(meta("10.0.0.11", 1, true, {}), {});
    const auto md = encode_metadata(meta("10.0.0.12", 1, true, {}));
    ms.apply(event(MemberEventKind::kJoined, "mix2", MemberState::kAlive, 1, md, t0), t0);
    ms.apply(event(MemberEventKind::kDead, "mix2", MemberState::kDead, 1, {}, t0 + 1s), t0 + 1s);
    ms.apply(event(MemberEventKind::kJoined, "mix3", MemberState::kAlive, 1, md, t0 + 5min), t0 + 5min);
    CHECK(ms.records().contains("mix2"));
    ms.apply(event(MemberEventKind::kJoined, "mix4", MemberState::kAlive, 1, md, t0 + 11min), t0 + 11min);
    CHECK_FALSE(ms.records().contains("mix2"));
    CHECK(ms.records().contains("mix3"));
    CHECK(ms.records().contains("mix1"));

    CHECK_FALSE(ms.apply(event(MemberEventKind::kDead, "mix1", MemberState::kDead, 9, {})));
    CHECK(ms.records().at("mix1").self);
    CHECK(names(ms.members()).front() == "mix1");
  }

  TEST_CASE("the first tables wait for one seed to answer, or for every seed to fail") {
    JoinWait none(0);
    CHECK(none.done());
    CHECK_FALSE(none.alone());

    JoinWait three(3);
    CHECK_FALSE(three.done());
    CHECK_FALSE(three.on_result(false));  // one seed down: another may still answer
    CHECK(three.on_result(true));
    CHECK_FALSE(three.alone());
    CHECK(three.on_result(false));  // later results change nothing

    JoinWait down(2);
    CHECK_FALSE(down.on_result(false));
    CHECK(down.on_result(false));
    CHECK(down.alone());
  }

  TEST_CASE("seeds given by name count from their resolution on") {
    JoinWait only_names(0, true);
    CHECK_FALSE(only_names.done());  // nothing to join through yet
    CHECK_FALSE(only_names.on_names_resolved(2));
    CHECK_FALSE(only_names.on_result(false));
    CHECK(only_names.on_result(false));
    CHECK(only_names.alone());

    // A fixed seed that fails first does not end the wait while names are
    // being resolved.
    JoinWait mixed(1, true);
    CHECK_FALSE(mixed.on_result(false));
    CHECK_FALSE(mixed.on_names_resolved(1));
    CHECK(mixed.on_result(true));
    CHECK_FALSE(mixed.alone());

    // Names that resolve to nothing but this node: the first node.
    JoinWait first(0, true);
    CHECK(first.on_names_resolved(0));
    CHECK_FALSE(first.alone());

    // Every fixed seed failed: the resolution (of no address) ends the wait.
    JoinWait failed(1, true);
    CHECK_FALSE(failed.on_result(false));
    CHECK(failed.on_names_resolved(0));
    CHECK(failed.alone());
  }

  TEST_CASE("VIP tags are shown as labels, unknown ones as hex") {
    const auto v = vips();
    Membership ms("mix1", v);
    const auto labels = ms.vip_labels(meta("10.0.0.11", 1, true, {vip_tag(v[2].key), 0xabcdef}));
    CHECK(labels == Names{"10.100.0.1:53/udp", "#00abcdef"});
  }
}

}  // namespace mixlb
