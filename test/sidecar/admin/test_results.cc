// The result types' wire forms: each type with every field set writes the
// JSON scripts read (field names are pinned here: a field is added, never
// renamed) and reads it back unchanged; a reply from an older daemon, with
// fields missing, reads with defaults; a field of the wrong type is the
// renderer's "unexpected <command> result", never an exception.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <string_view>

#include "admin/commands.h"
#include "admin/render.h"
#include "admin/results.h"
#include "canned.h"

namespace mixlb {
namespace {

using nlohmann::json;

// `value` writes `wire`, and `wire` reads back as a value that writes it
// again: every field survives both ways.
template <typename T>
void check_wire_form(const T& value, const json& wire) {
  const json written = value;
  CHECK(written == wire);
  const T read = wire.template get<T>();
  CHECK(json(read) == wire);
}

const CommandSpec& command(std::string_view name) {
  const CommandSpec* spec = find_command(name);
  REQUIRE_MESSAGE(spec != nullptr, "no command " << name);
  return *spec;
}

StatsResult full_stats() {
  StatsResult s;
  s.node = "mix1";
  s.node_id = 7;
  s.counters.events = {{"ct_hit", 10}};
  s.counters.drops = {{"redirect", 1}};
  s.counters.fib = {{"success", 42}};
  VipStats vip;
  vip.vip = "10.100.0.1:80/tcp";
  vip.backends = {"mix1", "mix2"};
  vip.weights = std::map<std::string, std::uint32_t>{{"mix1", 1}, {"mix2", 3}};
  vip.vip_id = 2;
  vip.counters = VipPackets{1, 74, 2, 148, 3, 222, {{"no_backend", 4}}};
  vip.per_node = std::vector<NodePackets>{{"mix1", true, 1, 74}, {"mix2", false, 2, 148}};
  s.vips = {vip};
  s.invalidation = "targeted";
  s.invalidation_latency = {{"p50_us", 900}, {"p99_us", 4100}, {"samples", 812}};
  return s;
}

const json kFullStats = json::parse(R"({
  "node":"mix1","node_id":7,
  "counters":{"events":{"ct_hit":10},"drops":{"redirect":1},"fib":{"success":42}},
  "vips":[{"vip":"10.100.0.1:80/tcp","backends":["mix1","mix2"],"weights":{"mix1":1,"mix2":3},
           "vip_id":2,
           "counters":{"local_pkts":1,"local_bytes":74,"fwd_pkts":2,"fwd_bytes":148,
                       "from_peer_pkts":3,"from_peer_bytes":222,"drops":{"no_backend":4}},
           "per_node":[{"name":"mix1","self":true,"pkts":1,"bytes":74},
                       {"name":"mix2","self":false,"pkts":2,"bytes":148}]}],
  "invalidation":"targeted","invalidation_latency":{"p50_us":900,"p99_us":4100,"samples":812}})");

TEST_SUITE("admin") {
  TEST_CASE("stats and status results keep every field on the wire") {
    check_wire_form(full_stats(), kFullStats);

    StatusResult status;
    static_cast<StatsResult&>(status) = full_stats();
    status.interface = "veth1";
    status.ifindex = 4;
    status.xdp_mode = "generic";
    status.uplink = "attached";
    status.address = "10.0.0.11";
    status.mac = "02:00:00:00:00:11";
    status.maglev_table_size = 65537;
    status.phase = "leaving";
    status.leave = "2 connection(s) on VIPs";
    status.instance = InstanceInfo{42, "/run/mixlb/mix1.lock", "/run/mixlb/mix1.host", true, true,
                                   "leave"};
    status.health = AppCheckInfo{
        "http", "2 check(s)", false, "tcp 10.100.0.1:53: refused",
        {ServiceCheckInfo{"http 10.100.0.1:8080/healthz", {"10.100.0.1:80/tcp"}, true, "HTTP 200"},
         ServiceCheckInfo{"tcp 10.100.0.1:53", {"10.100.0.1:53/tcp"}, false, "refused"}}};
    status.gossip = GossipInfo{true, "10.0.0.11:7946", "prod", true, true, 3, true, 30000, 5, 6,
                               "no space"};
    status.nodes = {NodeRow{"mix1", 7, "10.0.0.11", 1, "02:00:00:00:00:11", true, false, "self",
                            false},
                    NodeRow{"mix2", 8, "fd00::12", 3, "-", false, true, "reachable", true}};
    status.conntrack = ConntrackCounts{10, 3, 3, 1};
    json wire = kFullStats;
    wire.update(json::parse(R"json({
      "interface":"veth1","ifindex":4,"xdp_mode":"generic","uplink":"attached",
      "address":"10.0.0.11","mac":"02:00:00:00:00:11","maglev_table_size":65537,
      "phase":"leaving","leave":"2 connection(s) on VIPs",
      "instance":{"pid":42,"lock":"/run/mixlb/mix1.lock","host_record":"/run/mixlb/mix1.host",
                  "adopted_maps":true,"adopted_link":true,"on_stop":"leave"},
      "health":{"kind":"http","target":"2 check(s)","healthy":false,
                "last":"tcp 10.100.0.1:53: refused",
                "checks":[{"target":"http 10.100.0.1:8080/healthz","services":["10.100.0.1:80/tcp"],
                           "healthy":true,"last":"HTTP 200"},
                          {"target":"tcp 10.100.0.1:53","services":["10.100.0.1:53/tcp"],
                           "healthy":false,"last":"refused"}]},
      "gossip":{"enabled":true,"address":"10.0.0.11:7946","cluster":"prod","encrypted":true,
                "joined":true,"members_alive":3,"drained":true,"flow_grace_ms":30000,
                "table_rebuilds":5,"user_events":6,"last_sync_error":"no space"},
      "nodes":[{"name":"mix1","id":7,"address":"10.0.0.11","weight":1,"mac":"02:00:00:00:00:11",
                "self":true,"departed":false,"neighbour":"self","managed_neighbour":false},
               {"name":"mix2","id":8,"address":"fd00::12","weight":3,"mac":"-",
                "self":false,"departed":true,"neighbour":"reachable","managed_neighbour":true}],
      "conntrack":{"hit":10,"miss":3,"insert":3,"insert_fail":1}})json"));
    check_wire_form(status, wire);

    // Without an app check or gossip, their objects say only that.
    check_wire_form(AppCheckInfo{}, json{{"kind", "none"}});
    check_wire_form(GossipInfo{}, json{{"enabled", false}});
  }

  TEST_CASE("the canned status reads with nothing it holds lost") {
    const json back = canned::kStatus.get<StatusResult>();
    const json sent = canned::kStatus.flatten();
    const json kept = back.flatten();
    for (const auto& [pointer, value] : sent.items()) {
      CAPTURE(pointer);
      REQUIRE(kept.contains(pointer));
      CHECK(kept[pointer] == value);
    }
  }

  TEST_CASE("members results keep every field on the wire, the gossip counters or their error") {
    MembersResult members;
    members.node = "mix1";
    members.cluster = "prod";
    members.gossip_address = "10.0.0.11:7946";
    MemberRow row;
    row.name = "mix2";
    row.self = false;
    row.state = "dead";
    row.incarnation = 12;
    row.gossip_address = "10.0.0.12:7946";
    row.in_tables = false;
    row.since_s = 1.5;
    row.departed = true;
    row.flows_kept_s = 41.5;
    row.address = "10.0.0.12";
    row.mac = "02:00:00:00:00:12";
    row.weight = 3;
    row.app_healthy = false;
    row.restarting = true;
    row.vips = std::vector<std::string>{"10.100.0.1:80/tcp"};
    row.problem = "metadata: bad version";
    MemberRow self;
    self.name = "mix1";
    self.self = true;
    self.state = "alive";
    self.in_tables = true;
    members.members = {row, self};
    members.states = std::vector<std::string>{"dead", "left"};
    members.gossip = GossipCounters{-1, 50, 2, 1, 4, 3, 1000, 900, 1, 7, "bad key", "timeout"};
    const json wire = json::parse(R"({
      "node":"mix1","cluster":"prod","gossip_address":"10.0.0.11:7946",
      "members":[{"name":"mix2","self":false,"state":"dead","incarnation":12,
                  "gossip_address":"10.0.0.12:7946","in_tables":false,"since_s":1.5,
                  "departed":true,"flows_kept_s":41.5,"address":"10.0.0.12",
                  "mac":"02:00:00:00:00:12","weight":3,"app_healthy":false,"restarting":true,
                  "vips":["10.100.0.1:80/tcp"],"problem":"metadata: bad version"},
                 {"name":"mix1","self":true,"state":"alive","incarnation":0,"gossip_address":"",
                  "in_tables":true,"since_s":0.0}],
      "states":["dead","left"],
      "gossip":{"health_score":-1,"probes":50,"probes_failed":2,"suspicions_raised":1,
                "deaths_declared":4,"refutations":3,"bytes_sent":1000,"bytes_received":900,
                "drops":1,"events_dropped":7,"last_drop":"bad key","last_error":"timeout"}})");
    check_wire_form(members, wire);

    members.gossip.reset();
    members.gossip_error = "the gossip thread did not answer";
    json stuck = wire;
    stuck["gossip"] = {{"error", "the gossip thread did not answer"}};
    check_wire_form(members, stuck);
    const auto read = stuck.get<MembersResult>();
    CHECK_FALSE(read.gossip.has_value());
    CHECK(read.gossip_error == "the gossip thread did not answer");
  }

  TEST_CASE("keep_member_states keeps the members in the states asked for and records them") {
    MembersResult members;
    for (const char* state : {"alive", "suspect", "dead", "alive", "left"}) {
      MemberRow row;
      row.name = std::string("m-") + state;
      row.state = state;
      members.members.push_back(row);
    }
    keep_member_states(members, {"alive", "dead"});
    REQUIRE(members.members.size() == 3);
    CHECK(members.members[0].state == "alive");
    CHECK(members.members[1].state == "dead");
    CHECK(members.members[2].state == "alive");
    CHECK(members.states == std::vector<std::string>{"alive", "dead"});
  }

  TEST_CASE("drain, leave, reload and which results keep every field on the wire") {
    check_wire_form(DrainResult{"mix2", true, 0},
                    json{{"node", "mix2"}, {"drained", true}, {"weight", 0}});
    check_wire_form(DrainResult{"mix2", false, 3},
                    json{{"node", "mix2"}, {"drained", false}, {"weight", 3}});
    check_wire_form(LeaveResult{"mix3", false, std::nullopt, std::nullopt},
                    json{{"node", "mix3"}, {"leaving", false}});
    check_wire_form(LeaveResult{"mix3", true, 30000, std::nullopt},
                    json{{"node", "mix3"}, {"leaving", true}, {"timeout_ms", 30000}});
    check_wire_form(LeaveResult{"mix3", true, std::nullopt, "1 connection(s) on VIPs"},
                    json{{"node", "mix3"}, {"leaving", true}, {"state", "1 connection(s) on VIPs"}});
    check_wire_form(ReloadResult{"/etc/mixlb.toml", true, {"node.weight"}, {"gossip.port"}},
                    json{{"file", "/etc/mixlb.toml"},
                         {"changed", true},
                         {"applied", {"node.weight"}},
                         {"needs_restart", {"gossip.port"}}});
    WhichResult which;
    which.flow = {"udp", "2001:db8::1", 5353, "fd00:100::1", 53};
    which.vip = "[fd00:100::1]:*/udp";
    which.node = "mix1";
    which.node_id = 1234;
    which.self = true;
    which.verdict = "drop";
    which.drop_reason = "fib_no_neigh";
    which.from_conntrack = true;
    check_wire_form(which, json::parse(R"({
      "flow":{"proto":"udp","src":"2001:db8::1","sport":5353,"dst":"fd00:100::1","dport":53},
      "vip":"[fd00:100::1]:*/udp","node":"mix1","node_id":1234,"self":true,"verdict":"drop",
      "drop_reason":"fib_no_neigh","from_conntrack":true})"));
    // No VIP, no node: null on the wire, unset once read.
    WhichResult not_vip;
    not_vip.verdict = "pass";
    const json wire = not_vip;
    CHECK(wire["vip"].is_null());
    CHECK(wire["node"].is_null());
    CHECK_FALSE(wire.contains("drop_reason"));
    const auto read = wire.get<WhichResult>();
    CHECK_FALSE(read.vip.has_value());
    CHECK_FALSE(read.node.has_value());
  }

  TEST_CASE("vips results keep every field on the wire") {
    VipsResult vips;
    vips.node = "mix1";
    vips.interval_s = 1.0;
    VipTraffic traffic;
    traffic.vip = "10.100.0.1:80/tcp";
    traffic.vip_id = 2;
    traffic.pkts = 3;
    traffic.bytes = 222;
    traffic.from_peer_pkts = 4;
    traffic.from_peer_bytes = 300;
    traffic.dropped = 1;
    traffic.rate = PacketRate{2, 150};
    traffic.from_peer_rate = PacketRate{0.5, 40};
    traffic.backends = {VipBackend{"mix1", true, 1, true, 1, 74, PacketRate{1, 74}},
                        VipBackend{"mix3", false, std::nullopt, false, 2, 148, std::nullopt}};
    vips.vips = {traffic};
    check_wire_form(vips, json::parse(R"({
      "node":"mix1","interval_s":1.0,
      "vips":[{"vip":"10.100.0.1:80/tcp","vip_id":2,"pkts":3,"bytes":222,
               "from_peer_pkts":4,"from_peer_bytes":300,"dropped":1,
               "rate":{"pkts_per_s":2.0,"bytes_per_s":150.0},
               "from_peer_rate":{"pkts_per_s":0.5,"bytes_per_s":40.0},
               "backends":[{"name":"mix1","self":true,"weight":1,"in_table":true,"pkts":1,
                            "bytes":74,"rate":{"pkts_per_s":1.0,"bytes_per_s":74.0}},
                           {"name":"mix3","self":false,"in_table":false,"pkts":2,
                            "bytes":148}]}]})"));
  }

  TEST_CASE("ct results keep every field on the wire") {
    CtResult ct;
    ct.node = "mix1";
    ct.entries = 12;
    ct.capacity = 65536;
    ct.matched = 2;
    ct.filter = {"vip 10.100.0.1:80/tcp"};
    ct.rows = {CtRow{"10.0.1.2:41000", "10.100.0.1:80", "tcp", "mix2", "active", "syn", 12.0, 0.2},
               CtRow{"10.0.1.2:41001", "10.100.0.1:80", "tcp", "0x12345678", "idle", "syn,fin",
                     std::nullopt, 75.5}};
    check_wire_form(ct, json::parse(R"({
      "node":"mix1","entries":12,"capacity":65536,"matched":2,"filter":["vip 10.100.0.1:80/tcp"],
      "rows":[{"client":"10.0.1.2:41000","vip":"10.100.0.1:80","proto":"tcp","node":"mix2",
               "state":"active","flags":"syn","age_s":12.0,"idle_s":0.2},
              {"client":"10.0.1.2:41001","vip":"10.100.0.1:80","proto":"tcp","node":"0x12345678",
               "state":"idle","flags":"syn,fin","idle_s":75.5}]})"));
  }

  TEST_CASE("monitor results and each kind of event keep every field on the wire") {
    check_wire_form(MonitorStarted{"mix1", "debug"},
                    json{{"stream", "monitor"}, {"node", "mix1"}, {"level", "debug"}});
    check_wire_form(MonitorEvent{MemberChange{"t", "mix2", "alive", "suspect", 3, 1, true}},
                    json{{"event", "member"},
                         {"time", "t"},
                         {"name", "mix2"},
                         {"state", "alive"},
                         {"previous", "suspect"},
                         {"weight", 3},
                         {"previous_weight", 1},
                         {"restarting", true}});
    check_wire_form(MonitorEvent{MemberChange{"t", "mix2", "alive", std::nullopt, {}, {}, {}}},
                    json{{"event", "member"}, {"time", "t"}, {"name", "mix2"}, {"state", "alive"}});
    check_wire_form(MonitorEvent{HealthChange{"t", "mix1", false, "HTTP 503"}},
                    json{{"event", "health"},
                         {"time", "t"},
                         {"node", "mix1"},
                         {"healthy", false},
                         {"reason", "HTTP 503"}});
    check_wire_form(MonitorEvent{HealthChange{"t", "mix2", true, ""}},
                    json{{"event", "health"},
                         {"time", "t"},
                         {"node", "mix2"},
                         {"healthy", true},
                         {"reason", ""}});
    check_wire_form(
        MonitorEvent{LogLine{"t", "warn", "x"}},
        json{{"event", "log"}, {"time", "t"}, {"level", "warn"}, {"message", "x"}});
    check_wire_form(MonitorEvent{EventsDropped{"t", 2, 5}},
                    json{{"event", "dropped"}, {"time", "t"}, {"count", 2}, {"total", 5}});
    // Each kind reads as its own alternative.
    CHECK(json{{"event", "health"}, {"node", "a"}}.get<MonitorEvent>().event.index() == 1);
    CHECK(json{{"event", "dropped"}, {"count", 1}}.get<MonitorEvent>().event.index() == 3);
    const json bogus = {{"event", "bogus"}};
    CHECK_THROWS_WITH(bogus.get<MonitorEvent>(), R"(unknown monitor event "bogus")");
    const json no_kind = {{"message", "no kind"}};
    CHECK_THROWS_WITH(no_kind.get<MonitorEvent>(), R"(unknown monitor event "")");
  }

  TEST_CASE("a reply from an older daemon, with fields missing, reads with defaults") {
    const auto status = json{{"node", "mix9"}, {"leave", nullptr}}.get<StatusResult>();
    CHECK(status.node == "mix9");
    CHECK(status.node_id == 0);
    CHECK(status.vips.empty());
    CHECK(status.nodes.empty());
    CHECK_FALSE(status.leave.has_value());
    CHECK_FALSE(status.instance.has_value());
    CHECK_FALSE(status.health.has_value());
    CHECK_FALSE(status.gossip.has_value());
    CHECK_FALSE(status.conntrack.has_value());

    const auto members =
        json::parse(R"({"node":"mix1","members":[{"name":"mix2","state":"alive"}]})")
            .get<MembersResult>();
    REQUIRE(members.members.size() == 1);
    const MemberRow& row = members.members[0];
    CHECK(row.state == "alive");
    CHECK_FALSE(row.departed);
    CHECK_FALSE(row.address.has_value());
    CHECK_FALSE(row.weight.has_value());
    CHECK_FALSE(row.app_healthy.has_value());
    CHECK_FALSE(row.restarting.has_value());
    CHECK_FALSE(row.vips.has_value());
    CHECK_FALSE(members.states.has_value());
    CHECK_FALSE(members.gossip.has_value());
    CHECK(members.gossip_error.empty());

    const auto vips =
        json::parse(R"({"node":"mix1","vips":[{"vip":"v","backends":[{"name":"mix2"}]}]})")
            .get<VipsResult>();
    CHECK_FALSE(vips.interval_s.has_value());
    REQUIRE(vips.vips.size() == 1);
    CHECK_FALSE(vips.vips[0].rate.has_value());
    CHECK_FALSE(vips.vips[0].vip_id.has_value());
    REQUIRE(vips.vips[0].backends.size() == 1);
    CHECK_FALSE(vips.vips[0].backends[0].weight.has_value());
    CHECK_FALSE(vips.vips[0].backends[0].rate.has_value());

    // A newer daemon's extra fields are passed over.
    CHECK(json{{"node", "mix2"}, {"drained", true}, {"since", "now"}}.get<DrainResult>().drained);
    CHECK(json{{"level", "warn"}, {"message", "m"}, {"pid", 1}}.get<LogLine>().message == "m");

    // And every renderer copes with an empty object.
    for (const CommandSpec& c : admin_commands()) {
      CAPTURE(c.name);
      CHECK_FALSE(render_result(c, json::object()).starts_with("unexpected"));
    }
  }

  TEST_CASE("a result of the wrong shape renders as \"unexpected <command> result\"") {
    for (const CommandSpec& c : admin_commands()) {
      CAPTURE(c.name);
      const std::string name(c.name);
      CHECK(render_result(c, json::array()) == "unexpected " + name + " result: []\n");
      CHECK(render_result(c, json(5)) == "unexpected " + name + " result: 5\n");
      CHECK(render_result(c, json("text")) == "unexpected " + name + " result: \"text\"\n");
    }
    // A field of the wrong type, at any depth.
    CHECK(render_result(command("status"), json{{"node", 5}}) ==
          "unexpected status result: {\"node\":5}\n");
    CHECK(render_result(command("status"), json::parse(R"({"nodes":[{"weight":"heavy"}]})"))
              .starts_with("unexpected status result: "));
    CHECK(render_result(command("members"), json::parse(R"({"members":{"a":1}})"))
              .starts_with("unexpected members result: "));
    CHECK(render_result(command("which"), json{{"flow", "tcp"}})
              .starts_with("unexpected which result: "));
    CHECK(render_result(command("vips"), json::parse(R"({"vips":[{"rate":5}]})"))
              .starts_with("unexpected vips result: "));
    CHECK(render_result(command("reload"), json{{"applied", "node.weight"}})
              .starts_with("unexpected reload result: "));
    // Bytes that are not UTF-8 cannot break the message.
    CHECK(render_result(command("drain"), json{{"node", 1}, {"x", "\xff"}}) ==
          "unexpected drain result: {\"node\":1,\"x\":\"\xEF\xBF\xBD\"}\n");
    const CommandSpec& monitor = command("monitor");
    CHECK(render_event(monitor, json{{"event", "bogus"}}) ==
          "unexpected monitor event: {\"event\":\"bogus\"}\n");
    CHECK(render_event(monitor, json{{"event", "log"}, {"level", 3}})
              .starts_with("unexpected monitor event: "));
    CHECK(render_event(monitor, json("not json")) == "unexpected monitor event: \"not json\"\n");
  }

  TEST_CASE("event times are UTC with milliseconds; log levels rank least severe first") {
    using std::chrono::milliseconds;
    using std::chrono::system_clock;
    CHECK(event_time(system_clock::time_point(milliseconds(1714557600123))) ==
          "2024-05-01T10:00:00.123Z");
    CHECK(event_time(system_clock::time_point(milliseconds(0))) == "1970-01-01T00:00:00.000Z");
    CHECK(event_time(system_clock::time_point(milliseconds(-1))) == "1969-12-31T23:59:59.999Z");
    CHECK(log_level_rank("trace") == 0);
    CHECK(log_level_rank("info") == 2);
    CHECK(log_level_rank("critical") == 5);
    CHECK_FALSE(log_level_rank("loud").has_value());
    CHECK_FALSE(log_level_rank("").has_value());
  }
}  // TEST_SUITE

}  // namespace
}  // namespace mixlb
