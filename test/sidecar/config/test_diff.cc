// What a reload may change while the sidecar runs, and what needs a restart.
#include <doctest/doctest.h>

#include <string>

#include "config/config.h"
#include "config/diff.h"

namespace mixlb {
namespace {

using Paths = std::vector<std::string>;

const std::string kBase = R"([node]
name = "mix1"
interface = "eth0"
address = "10.0.0.11"
[gossip]
insecure = true
[[vip]]
address = "10.100.0.1"
ports = [80]
[[peer]]
name = "mix2"
address = "10.0.0.12"
)";

Config with(const std::string& extra_node, const std::string& tail = "") {
  std::string text = kBase;
  text.insert(text.find("[gossip]"), extra_node);
  return parse_config(text + tail, "mix1.toml");
}

}  // namespace

TEST_SUITE("diff") {
  TEST_CASE("the same file changes nothing") {
    const ConfigDiff d = diff_configs(with(""), with(""));
    CHECK(d.empty());
    CHECK_FALSE(d.vips);
    CHECK_FALSE(d.peers);
  }

  TEST_CASE("weights, log settings, health, grace, metrics and VIPs apply live") {
    const Config before = with("");
    const Config after = with("weight = 3\nlog_level = \"debug\"\nleave_timeout_ms = 5000\n",
                              "[[vip]]\naddress = \"10.100.0.2\"\nport = 443\n[health]\nrise = 5\n"
                              "[metrics]\nlisten = \"off\"\n");
    const ConfigDiff d = diff_configs(before, after);
    CHECK(d.live == Paths{"node.weight", "node.log_level", "node.leave_timeout_ms", "health.rise",
                          "metrics.listen", "vip"});
    CHECK(d.restart.empty());
    CHECK(d.vips);
    CHECK(d.health);
    CHECK(d.metrics);
    CHECK(d.logging);
  }

  TEST_CASE("a VIP's own check (health, health_port, health_path) is a VIP change, applied live") {
    std::string text = kBase;
    for (const char* key : {"health = \"http\"\n", "health_port = 8080\n", "health_path = \"/ok\"\n"}) {
      std::string changed = kBase;
      changed.insert(changed.find("ports = [80]\n") + 13, key);
      const ConfigDiff d = diff_configs(parse_config(text, "mix1.toml"), parse_config(changed, "mix1.toml"));
      CAPTURE(key);
      CHECK(d.vips);
      CHECK(d.live == Paths{"vip"});
    }
  }

  TEST_CASE("identity, sizes, the data path and how gossip runs need a restart") {
    const Config before = with("");
    std::string text = kBase;
    text.replace(text.find("eth0"), 4, "eth1");
    text += "[datapath]\nconntrack_entries = 4096\n";
    text.replace(text.find("insecure = true"), 15, "insecure = true\nport = 7000\nprobe_interval_ms = 800");
    const ConfigDiff d = diff_configs(before, parse_config(text, "mix1.toml"));
    CHECK(d.live.empty());
    CHECK(d.restart == Paths{"node.interface", "datapath.conntrack_entries", "gossip.port",
                             "gossip.probe_interval_ms"});
  }

  TEST_CASE("the peer list is live without gossip, the seed list needs a restart") {
    std::string text = kBase + "[[peer]]\nname = \"mix3\"\naddress = \"10.0.0.13\"\n";
    const ConfigDiff seeds = diff_configs(with(""), parse_config(text, "mix1.toml"));
    CHECK(seeds.restart == Paths{"peer"});
    std::string off = kBase;
    off.replace(off.find("insecure = true"), 15, "enabled = false");
    std::string off3 = off + "[[peer]]\nname = \"mix3\"\naddress = \"10.0.0.13\"\n";
    const ConfigDiff members = diff_configs(parse_config(off, "m.toml"), parse_config(off3, "m.toml"));
    CHECK(members.live == Paths{"peer"});
    CHECK(members.peers);
  }
}

}  // namespace mixlb
