// The text mixlbctl prints, tested on canned JSON as the daemon sends it:
// each case renders through the command table (render_result), so the wire
// form is read by the result types and the layout comes from the
// renderer that command's row names.
#include <doctest/doctest.h>

#include <string>
#include <string_view>

#include "admin/commands.h"
#include "admin/results.h"
#include "canned.h"

namespace mixlb {
namespace {

using canned::kStatus;
using nlohmann::json;

// What mixlbctl prints for `result` of `command`.
std::string render(std::string_view command, const json& result) {
  const CommandSpec* spec = find_command(command);
  REQUIRE_MESSAGE(spec != nullptr, "no command " << command);
  return render_result(*spec, result);
}

TEST_SUITE("admin") {
  TEST_CASE("render_status lays out the canned status") {
    const std::string expected =
        "mixlb node mix1 (id 0x12345678)\n"
        "  interface  veth1 (ifindex 4), xdp native\n"
        "  address    10.0.0.11, mac 02:00:00:00:00:11\n"
        "  maglev     65537 slots per VIP\n"
        "\n"
        "nodes\n"
        "  NAME          ID  ADDRESS    WEIGHT  MAC                NEIGHBOUR\n"
        "  mix1  0x12345678  10.0.0.11       1  02:00:00:00:00:11  self\n"
        "  mix2  0x000004d2  fd00::12       12  02:00:00:00:00:12  reachable\n"
        "  mix3  0x00000063  10.0.0.13       0  -                  none\n"
        "\n"
        "vips\n"
        "  VIP                  BACKENDS             LOCAL PKTS  LOCAL BYTES  FWD PKTS  FWD BYTES  "
        "PEER PKTS  PEER BYTES  DROPPED\n"
        "  10.100.0.1:80/tcp    mix1,mix2:12,mix3:0           1           74         2        148  "
        "        3         222        0\n"
        "  [fd00:100::1]:*/udp  mix2:12                       0            0        40      52000  "
        "        0           0        0\n"
        "\n"
        "conntrack\n"
        "  hit 10  miss 3  insert 3  insert_fail 0\n";
    CHECK(render("status", kStatus) == expected);
  }

  TEST_CASE("render_status names the metrics endpoint, or says it is off") {
    json status = kStatus;
    status["metrics"] = "127.0.0.1:9650";
    CHECK(render("status", status).find("  maglev     65537 slots per VIP\n"
                                        "  metrics    http://127.0.0.1:9650/metrics\n") != std::string::npos);
    status["metrics"] = "[::1]:9650";
    CHECK(render("status", status).find("  metrics    http://[::1]:9650/metrics\n") != std::string::npos);
    status["metrics"] = "off";
    CHECK(render("status", status).find("  metrics    off\n") != std::string::npos);
    // A daemon from before the endpoint says nothing about it.
    CHECK(render("status", kStatus).find("metrics") == std::string::npos);
  }

  TEST_CASE("render_status shows the app check: healthy, unhealthy, or not checked") {
    json status = kStatus;
    status["health"] = {{"kind", "http"}, {"target", "10.100.0.1:80"}, {"healthy", false}, {"last", "HTTP 503"}};
    CHECK(render("status", status).find("  app        http 10.100.0.1:80: UNHEALTHY (last probe: HTTP 503)\n") !=
          std::string::npos);
    status["health"]["healthy"] = true;
    status["health"]["last"] = "ok";
    CHECK(render("status", status).find("  app        http 10.100.0.1:80: healthy (last probe: ok)\n") !=
          std::string::npos);
    status["health"] = {{"kind", "none"}};
    CHECK(render("status", status).find("  app        not checked\n") != std::string::npos);
    // One line per check, with the services it decides.
    status["health"] = json::parse(R"json({"kind":"http","target":"2 check(s)","healthy":false,
      "last":"tcp 10.100.0.1:53: refused",
      "checks":[{"target":"http 10.100.0.1:8080/healthz","services":["10.100.0.1:80/tcp","10.100.0.1:443/tcp"],
                 "healthy":true,"last":"HTTP 200"},
                {"target":"tcp 10.100.0.1:53","services":[],"healthy":false,"last":"refused"}]})json");
    CHECK(render("status", status).find(
              "  maglev     65537 slots per VIP\n"
              "  app        UNHEALTHY\n"
              "    http 10.100.0.1:8080/healthz for 10.100.0.1:80/tcp, 10.100.0.1:443/tcp: healthy "
              "(last probe: HTTP 200)\n"
              "    tcp 10.100.0.1:53 for -: UNHEALTHY (last probe: refused)\n"
              "\nnodes\n") != std::string::npos);
  }

  TEST_CASE("render_status shows the life cycle: a lost uplink, a leave, an adopted data path, departed nodes") {
    json status = kStatus;
    CHECK(render("status", status).find("UPLINK") == std::string::npos);
    status["uplink"] = "missing";
    CHECK(render("status", status).find(", xdp native, UPLINK MISSING: nothing is balanced here\n") !=
          std::string::npos);
    status["uplink"] = "detached";
    CHECK(render("status", status).find(", PROGRAM DETACHED: attaching it again\n") != std::string::npos);
    status["phase"] = "leaving";
    status["leave"] = "2 connection(s) on VIPs, last VIP packet 0.1 s ago";
    CHECK(render("status", status).find("  LEAVING    2 connection(s) on VIPs, last VIP packet 0.1 s ago\n") !=
          std::string::npos);
    status["instance"] = {{"pid", 42}, {"on_stop", "restart"}, {"adopted_maps", true}, {"adopted_link", false}};
    CHECK(render("status", status).find("  instance   pid 42, on SIGTERM: restart (adopted the data path of an "
                                     "earlier mixlb: maps yes, link no)\n") != std::string::npos);
    status["instance"]["adopted_maps"] = false;
    CHECK(render("status", status).find("  instance   pid 42, on SIGTERM: restart\n") != std::string::npos);
    status["nodes"][1]["departed"] = true;
    CHECK(render("status", status).find("mix2 (departed)") != std::string::npos);
  }

  TEST_CASE("render_status shows gossip: address, cluster, encryption, members, drain, sync errors") {
    json status = kStatus;
    status["gossip"] = {{"enabled", true},         {"address", "10.0.0.11:7946"},
                        {"cluster", "prod"},       {"encrypted", true},
                        {"joined", true},          {"members_alive", 3},
                        {"drained", false},        {"last_sync_error", ""}};
    CHECK(render("status", status).find("  gossip     10.0.0.11:7946, cluster 'prod', encrypted, 3 member(s) "
                                     "alive\n\nnodes\n") != std::string::npos);
    status["gossip"]["encrypted"] = false;
    status["gossip"]["drained"] = true;
    status["gossip"]["joined"] = false;
    status["gossip"]["last_sync_error"] = "allocating a VIP id: No space left on device";
    const std::string text = render("status", status);
    CHECK(text.find("cluster 'prod', NOT ENCRYPTED, 3 member(s) alive, joining, DRAINED\n") != std::string::npos);
    CHECK(text.find("  tables     NOT UPDATED: allocating a VIP id: No space left on device\n") !=
          std::string::npos);
    status["gossip"] = {{"enabled", false}};
    CHECK(render("status", status).find("  gossip     off: the peer list is the member set\n") != std::string::npos);
  }

  TEST_CASE("render_members lays out members, the reason one is left out, and the counters") {
    const json members = {
        {"node", "mix1"},
        {"cluster", "prod"},
        {"gossip_address", "10.0.0.11:7946"},
        {"members",
         {{{"name", "mix1"}, {"self", true}, {"state", "alive"}, {"incarnation", 3},
           {"gossip_address", "10.0.0.11:7946"}, {"address", "10.0.0.11"}, {"weight", 1},
           {"app_healthy", true}, {"in_tables", true}, {"vips", {"10.100.0.1:80/tcp", "10.100.0.1:53/udp"}}},
          {{"name", "mix2"}, {"self", false}, {"state", "suspect"}, {"incarnation", 12},
           {"gossip_address", "10.0.0.12:7946"}, {"address", "10.0.0.12"}, {"weight", 0},
           {"app_healthy", false}, {"in_tables", true}, {"vips", json::array()}},
          {{"name", "mix3"}, {"self", false}, {"state", "alive"}, {"incarnation", 1},
           {"gossip_address", "10.0.0.13:7946"}, {"in_tables", false},
           {"problem", "metadata: version: 2 is not the version this node reads (1) at offset 1"}}}},
        {"gossip",
         {{"probes", 50}, {"probes_failed", 2}, {"suspicions_raised", 1}, {"deaths_declared", 0},
          {"refutations", 0}, {"health_score", 0}, {"bytes_sent", 1000}, {"bytes_received", 900},
          {"drops", 1}, {"last_drop", "10.0.0.9:7946: no installed key authenticates the packet"}}}};
    const std::string expected =
        "mixlb cluster 'prod' seen from mix1 (gossip 10.0.0.11:7946)\n"
        "  NAME         STATE    INC  GOSSIP          ADDRESS    WEIGHT  APP      TABLES  VIPS\n"
        "  mix1 (self)  alive      3  10.0.0.11:7946  10.0.0.11       1  ok       yes     "
        "10.100.0.1:80/tcp,10.100.0.1:53/udp\n"
        "  mix2         suspect   12  10.0.0.12:7946  10.0.0.12       0  FAILING  yes     -\n"
        "  mix3         alive      1  10.0.0.13:7946  -               -  -        no      -\n"
        "  mix3: metadata: version: 2 is not the version this node reads (1) at offset 1\n"
        "\n"
        "gossip  probes 50 (failed 2), suspicions raised 1, deaths declared 0, refutations 0, local "
        "health 0\n"
        "        sent 1000 B, received 900 B, dropped 1 message(s) (last: 10.0.0.9:7946: no installed "
        "key authenticates the packet)\n";
    CHECK(render("members", members) == expected);
    json stuck = members;
    stuck["gossip"] = {{"error", "the gossip thread did not answer: timed out"}};
    CHECK(render("members", stuck).ends_with("\ngossip  the gossip thread did not answer: timed out\n"));
    CHECK(render("members", json::array()).starts_with("unexpected members result: []"));
    // Gossip-mode invalidations beyond the event queue: said on the same line.
    json overflowing = members;
    overflowing["gossip"]["events_dropped"] = 12;
    CHECK(render("members", overflowing)
              .ends_with("key authenticates the packet), 12 user event(s) over the queue bound\n"));

    // A member that died keeps its flows for a while; one restarting its
    // sidecar gets no new flows.
    json life = members;
    life["members"][1]["state"] = "dead";
    life["members"][1]["in_tables"] = false;
    life["members"][1]["departed"] = true;
    life["members"][1]["flows_kept_s"] = 41.6;
    life["members"][0]["restarting"] = true;
    const std::string text = render("members", life);
    INFO(text);
    CHECK(text.find("  mix2         dead    12  10.0.0.12:7946  10.0.0.12       0  FAILING         "
                    "flows only, 42 s left  -\n") != std::string::npos);
    CHECK(text.find("  mix1 (self)  alive    3  10.0.0.11:7946  10.0.0.11       1  ok, restarting  yes ") !=
          std::string::npos);
  }

  TEST_CASE("render_leave says what the leave will do") {
    CHECK(render("leave", {{"node", "mix3"}, {"leaving", true}, {"timeout_ms", 30000}}) ==
          "mix3 is leaving: no new flows from now on; established connections are served until "
          "they end (at most 30000 ms), then mixlb removes the data path and exits\n");
    CHECK(render("leave", {{"node", "mix3"}, {"leaving", true}, {"state", "1 connection(s) on VIPs"}}) ==
          "mix3 is already leaving: 1 connection(s) on VIPs\n");
  }

  TEST_CASE("render_drain says what a drain and an undrain did") {
    CHECK(render("drain", {{"node", "mix2"}, {"drained", true}, {"weight", 0}}) ==
          "mix2 drained: weight 0 is published, new flows go to other nodes; established "
          "connections stay\n");
    CHECK(render("drain", {{"node", "mix2"}, {"drained", false}, {"weight", 3}}) ==
          "mix2 serving again with weight 3\n");
  }

  TEST_CASE("render_status lists each non-zero drop reason under its VIP") {
    json status = kStatus;
    auto& drops = status["vips"][0]["counters"]["drops"];
    drops["fib_no_neigh"] = 5;
    drops["redirect"] = 2;
    json second = status["vips"][0];
    second["vip"] = "[fd00::1]:443/tcp";
    second["counters"]["drops"] = json{{"no_backend", 0}};
    status["vips"].push_back(second);

    const std::string text = render("status", status);
    const auto first_row = text.find("  10.100.0.1:80/tcp");
    const auto fib = text.find("    dropped fib_no_neigh: 5\n");
    const auto redirect = text.find("    dropped redirect: 2\n");
    const auto second_row = text.find("  [fd00::1]:443/tcp");
    REQUIRE(first_row != std::string::npos);
    REQUIRE(fib != std::string::npos);
    REQUIRE(redirect != std::string::npos);
    REQUIRE(second_row != std::string::npos);
    CHECK(first_row < fib);
    CHECK(fib < second_row);
    CHECK(redirect < second_row);
    CHECK(text.find("dropped no_backend") == std::string::npos);
    // The total is the sum of the reasons, right-aligned under DROPPED.
    const auto row_end = text.find('\n', first_row);
    CHECK(text.substr(row_end - 2, 2) == " 7");
  }

  TEST_CASE("render_status shows bare backend names when the daemon sends no weights") {
    json status = kStatus;
    status["vips"][0].erase("weights");
    status["vips"][0]["backends"] = json{"mix1", "mix2", "mix3"};
    CHECK(render("status", status).find("  10.100.0.1:80/tcp    mix1,mix2,mix3 ") !=
          std::string::npos);
  }

  TEST_CASE("render_stats lays out the global counters and the (VIP, node) table") {
    const std::string expected =
        "mixlb node mix1 (id 0x12345678)\n"
        "\n"
        "counters\n"
        "  events  ct_hit 10  ct_insert 3  ct_insert_fail 0  ct_miss 3  ct_non_syn_miss 1  "
        "from_peer 3  icmp_error 0\n"
        "  drops   fib_no_neigh 2  redirect 1\n"
        "  fib     no_neigh 2  success 42\n"
        "\n"
        "per VIP and node\n"
        "  VIP                  NODE  WEIGHT  ROLE       PKTS  BYTES\n"
        "  10.100.0.1:80/tcp    mix1       1  local         1     74\n"
        "  10.100.0.1:80/tcp    mix2      12  forwarded     2    148\n"
        "  10.100.0.1:80/tcp    mix3       0  forwarded     0      0\n"
        "  [fd00:100::1]:*/udp  mix2      12  forwarded    40  52000\n";
    CHECK(render("stats", kStatus) == expected);
  }

  TEST_CASE("render_stats names the invalidation mode and its latency, or a dash before any") {
    json with = kStatus;
    with["invalidation"] = "multicast";
    with["invalidation_latency"] = json{{"p50_us", 850}, {"p99_us", 3900}, {"samples", 4096}};
    CHECK(render("stats", with).find("  fib     no_neigh 2  success 42\n"
                                     "  invalidation by multicast: close-to-delete latency p50 850 us, "
                                     "p99 3900 us (last 4096 applied)\n") != std::string::npos);
    with["invalidation_latency"] = json::object();
    CHECK(render("stats", with).find("  invalidation by multicast: close-to-delete latency -\n") !=
          std::string::npos);
    CHECK(render("stats", kStatus).find("invalidation") == std::string::npos);
    with["invalidation_apply"] = "kernel";
    CHECK(render("stats", with).find("  invalidation by multicast, applied in the kernel: close-to-delete latency -\n") !=
          std::string::npos);
    with["invalidation_apply"] = "per_flow";
    CHECK(render("stats", with).find(
              "  invalidation by multicast, applied a flow per syscall: close-to-delete latency -\n") !=
          std::string::npos);
  }

  TEST_CASE("render_stats copes with nothing counted and missing fields") {
    json quiet = kStatus;
    quiet["counters"]["drops"] = json{{"no_backend", 0}, {"redirect", 0}};
    quiet["counters"]["fib"] = json::object();
    quiet["vips"][1].erase("per_node");  // not published yet
    const std::string text = render("stats", quiet);
    CHECK(text.find("  drops   none\n") != std::string::npos);
    CHECK(text.find("  fib     none\n") != std::string::npos);
    CHECK(text.find("  [fd00:100::1]:*/udp  -          -  -             -      -\n") !=
          std::string::npos);

    const std::string bare = render("stats", json{{"node", "mix9"}});
    CHECK(bare.starts_with("mixlb node mix9 (id 0x00000000)\n"));
    CHECK(bare.find("  events  none\n") != std::string::npos);
    CHECK(bare.find("per VIP and node\n  none\n") != std::string::npos);
    CHECK(render("stats", json(5)).starts_with("unexpected stats result"));
  }

  TEST_CASE("render_which says where a flow goes in one line") {
    const json base = json::parse(R"({
      "flow":{"proto":"tcp","src":"192.0.2.1","sport":40000,"dst":"10.100.0.1","dport":80},
      "vip":"10.100.0.1:80/tcp","node":"mix2","node_id":1234,"self":false,"verdict":"tx",
      "from_conntrack":false})");
    CHECK(render("which", base) ==
          "10.100.0.1:80/tcp from 192.0.2.1:40000 -> mix2 (forwarded, Maglev)\n");

    json local = base;
    local["node"] = "mix1";
    local["self"] = true;
    local["verdict"] = "pass";
    local["from_conntrack"] = true;
    CHECK(render("which", local) ==
          "10.100.0.1:80/tcp from 192.0.2.1:40000 -> mix1 (this node, connection table)\n");

    json redirected = base;
    redirected["verdict"] = "redirect";
    CHECK(render("which", redirected) ==
          "10.100.0.1:80/tcp from 192.0.2.1:40000 -> mix2 (forwarded through another interface, "
          "Maglev)\n");

    json dropped = base;
    dropped["verdict"] = "drop";
    dropped["drop_reason"] = "fib_no_neigh";
    CHECK(render("which", dropped) ==
          "10.100.0.1:80/tcp from 192.0.2.1:40000 -> dropped: fib_no_neigh (chosen: mix2, "
          "Maglev)\n");
    dropped["node"] = nullptr;
    dropped["node_id"] = 0;
    dropped["drop_reason"] = "no_backend";
    CHECK(render("which", dropped) ==
          "10.100.0.1:80/tcp from 192.0.2.1:40000 -> dropped: no_backend\n");

    json stale = base;  // a connection entry naming a node that left
    stale["node"] = nullptr;
    stale["node_id"] = 77;
    stale["from_conntrack"] = true;
    CHECK(render("which", stale) ==
          "10.100.0.1:80/tcp from 192.0.2.1:40000 -> node id 0x0000004d (forwarded, connection "
          "table)\n");

    json v6 = base;
    v6["flow"] = {{"proto", "udp"},
                  {"src", "2001:db8::1"},
                  {"sport", 5353},
                  {"dst", "fd00:100::1"},
                  {"dport", 53}};
    v6["vip"] = "[fd00:100::1]:*/udp";
    CHECK(render("which", v6) ==
          "[fd00:100::1]:53/udp from [2001:db8::1]:5353 -> mix2 (forwarded, Maglev; VIP "
          "[fd00:100::1]:*/udp)\n");

    json not_vip = base;
    not_vip["vip"] = nullptr;
    not_vip["node"] = nullptr;
    not_vip["verdict"] = "pass";
    CHECK(render("which", not_vip) ==
          "10.100.0.1:80/tcp from 192.0.2.1:40000: not a VIP (passed to the local stack "
          "untouched)\n");
    CHECK(render("which", json::array()).starts_with("unexpected which result"));
  }

  TEST_CASE("render_status copes with missing fields") {
    const std::string text = render("status", json{{"node", "mix9"}});
    CHECK(text.starts_with("mixlb node mix9 (id 0x00000000)\n"));
    CHECK(text.find("nodes\n  none\n") != std::string::npos);
    CHECK(text.find("vips\n  none\n") != std::string::npos);
    CHECK(text.find("conntrack\n  -\n") != std::string::npos);
    CHECK(render("status", json::array()).starts_with("unexpected status result"));
  }

  TEST_CASE("ct shows the counts, the filters and the most recent entries") {
    const json rows = {{{"client", "10.0.1.2:41000"}, {"vip", "10.100.0.1:80"}, {"proto", "tcp"},
                        {"node", "mix2"}, {"state", "active"}, {"flags", "syn"}, {"age_s", 12.0},
                        {"idle_s", 0.25}},
                       {{"client", "[fd00:1::2]:5"}, {"vip", "[fd00:100::1]:80"}, {"proto", "tcp"},
                        {"node", "mix1"}, {"state", "closing"}, {"flags", "syn,fin"},
                        {"idle_s", 3.0}}};
    CHECK(render("ct", {{"node", "mix1"}, {"entries", 7}, {"capacity", 65536}, {"matched", 3},
                        {"filter", {"vip 10.100.0.1:80"}}, {"rows", rows}}) ==
          "mixlb node mix1: connection table 7 of 65536 entries; 3 match vip 10.100.0.1:80; the 2 "
          "most recent:\n"
          "  CLIENT          VIP                   NODE  STATE    FLAGS    AGE S  IDLE S\n"
          "  10.0.1.2:41000  10.100.0.1:80/tcp     mix2  active   syn       12.0     0.2\n"
          "  [fd00:1::2]:5   [fd00:100::1]:80/tcp  mix1  closing  syn,fin      -     3.0\n");
    CHECK(render("ct", {{"node", "mix1"}, {"entries", 0}, {"capacity", 4096}, {"matched", 0},
                        {"filter", json::array()}, {"rows", json::array()}}) ==
          "mixlb node mix1: connection table 0 of 4096 entries\n");
  }

  TEST_CASE("undrain renders as drain does") {
    CHECK(render("undrain", {{"node", "mix2"}, {"drained", false}, {"weight", 3}}) ==
          "mix2 serving again with weight 3\n");
  }

  TEST_CASE("reload says what it applied and what waits for a restart") {
    CHECK(render("reload", {{"file", "/etc/mixlb/mix1.toml"}, {"changed", false}}) ==
          "/etc/mixlb/mix1.toml: nothing changed\n");
    CHECK(render("reload", {{"file", "/etc/mixlb/mix1.toml"},
                            {"changed", true},
                            {"applied", {"node.weight", "health.interval_ms"}},
                            {"needs_restart", json::array()}}) ==
          "/etc/mixlb/mix1.toml reloaded: applied node.weight, health.interval_ms\n");
    CHECK(render("reload", {{"file", "/etc/mixlb/mix1.toml"},
                            {"changed", true},
                            {"applied", json::array()},
                            {"needs_restart", {"gossip.port", "datapath.mode"}}}) ==
          "/etc/mixlb/mix1.toml reloaded: applied nothing\n"
          "  needs a restart, running values kept: gossip.port, datapath.mode\n");
  }

  TEST_CASE("members says which states it was asked for") {
    const json members = {{"node", "mix1"},
                          {"cluster", "prod"},
                          {"gossip_address", "10.0.0.11:7946"},
                          {"members", json::array()},
                          {"states", {"suspect", "dead"}},
                          {"gossip", {{"error", "x"}}}};
    CHECK(render("members", members) ==
          "mixlb cluster 'prod' seen from mix1 (gossip 10.0.0.11:7946)\n"
          "  members suspect or dead\n"
          "  none\n"
          "\ngossip  x\n");
  }

  TEST_CASE("render_sockets: what an action did, then each service's generations and sockets") {
    const json sockets = json::parse(R"({
      "enabled": true, "policy": "hash",
      "adopted": [{"service": "tcp 0.0.0.0:80", "generation": 2, "sockets": 2, "active": true}],
      "skipped": [{"fd": 3, "why": "udp 0.0.0.0:53: not a managed VIP port"}],
      "services": [{"service": "tcp 0.0.0.0:80", "policy": "hash", "generations": [
        {"number": 1, "label": "pid:100", "pid": 100, "state": "draining", "table": 0,
         "selected": 900, "migrated": 4, "sticky": 0, "fallback": 0,
         "workers": [{"index": 0, "cookie": 4097, "incoming_cpu": -1, "state": "listen", "queued": 0, "backlog": 511}]},
        {"number": 2, "label": "pid:200", "pid": 200, "state": "active", "table": 1,
         "selected": 12, "migrated": 0, "sticky": 0, "fallback": 0,
         "workers": [{"index": 1, "cookie": 4200, "incoming_cpu": -1, "state": "listen", "queued": 3, "backlog": 511},
                     {"index": 2, "cookie": 4201, "incoming_cpu": -1, "state": "closed"}]}]}]})");
    const std::string text = find_command("sockets")->render(sockets);
    CHECK(text.find("adopted 2 socket(s) of tcp 0.0.0.0:80 as generation 2, active") != std::string::npos);
    CHECK(text.find("left fd 3: udp 0.0.0.0:53: not a managed VIP port") != std::string::npos);
    CHECK(text.find("tcp 0.0.0.0:80 (policy hash)") != std::string::npos);
    CHECK(text.find("draining") != std::string::npos);
    CHECK(text.find("3/511") != std::string::npos);
    CHECK(text.find("closed") != std::string::npos);
    CHECK(find_command("sockets")->render(json{{"services", json::array()}}).find("no managed sockets") !=
          std::string::npos);
  }
}  // TEST_SUITE

}  // namespace
}  // namespace mixlb
