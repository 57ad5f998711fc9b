// Tests of the configuration loader: the example file, every rule of the
// schema through table-driven bad inputs whose exact messages (file, line,
// key, reason) are asserted, and the command-line flags that override a file.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cluster/node_id.h"
#include "config/config.h"
#include "health.h"
#include "settings.h"

#ifndef MIXLB_SOURCE_DIR
#error "test/meson.build passes MIXLB_SOURCE_DIR"
#endif

namespace mixlb {
namespace {

const std::string kSourceDir = MIXLB_SOURCE_DIR;
const std::string kExample = kSourceDir + "/conf/mixlb.example.toml";

// The message parse_config() throws for `text`, or "" when it accepts it.
std::string parse_error(const std::string& text) {
  try {
    parse_config(text, "mix1.toml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

// config_from_args() on a list of arguments (argv[0] is added).
std::optional<Config> from_args(std::vector<std::string> args, std::ostream& out) {
  args.insert(args.begin(), "mixlb");
  std::vector<const char*> argv;
  for (const std::string& arg : args) argv.push_back(arg.c_str());
  return config_from_args(static_cast<int>(argv.size()), argv.data(), out);
}

std::optional<Config> from_args(std::vector<std::string> args) {
  std::ostringstream out;
  return from_args(std::move(args), out);
}

std::string args_error(std::vector<std::string> args) {
  try {
    from_args(std::move(args));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

Address addr(const char* text) {
  const auto address = Address::parse(text);
  REQUIRE(address);
  return *address;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// A config file in the test's temporary directory, removed at scope exit.
class TempFile {
 public:
  explicit TempFile(const std::string& text) {
    char name[] = "/tmp/mixlb-config-test-XXXXXX";
    const int fd = mkstemp(name);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    close(fd);
    path_ = name;
  }
  ~TempFile() { std::remove(path_.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct BadInput {
  const char* what;
  const char* text;
  const char* message;  // the exact ConfigError message
};

}  // namespace

TEST_SUITE("config") {
  TEST_CASE("the example file parses and holds what it says") {
    const Config c = load_config_file(kExample);
    CHECK(c.source == kExample);
    CHECK(c.node.name == "mix1");
    CHECK(c.node.interface == "eth0");
    REQUIRE(c.node.address);
    CHECK(*c.node.address == addr("10.0.0.11"));
    CHECK(c.node.admin_socket == "/run/mixlb/mix1.sock");
    CHECK(c.node.bpffs_dir == "/sys/fs/bpf/mixlb");
    CHECK(c.node.log_level == "info");
    CHECK(c.datapath.xdp_mode == XdpMode::kAuto);
    CHECK(c.datapath.maglev_table_size == 65537);
    CHECK(c.datapath.conntrack_entries == 65536);
    CHECK(c.datapath.max_vips == 16);
    CHECK(c.datapath.max_nodes == 1024);
    CHECK(c.neighbours.refresh_ms == 1000);
    CHECK(c.node.weight == 1);
    REQUIRE(c.vips.size() == 4);
    CHECK(c.vips[0].address == addr("10.100.0.1"));
    CHECK(c.vips[0].protocol == 6);
    CHECK(c.vips[0].ports == std::vector<std::uint16_t>{80, 443});
    CHECK(c.vips[0].nodes.empty());
    CHECK(c.vips[1].address == addr("10.100.0.2"));
    CHECK(c.vips[1].ports == std::vector<std::uint16_t>{7000});
    CHECK(c.vips[1].nodes == std::vector<std::string>{"mix1", "mix2"});
    CHECK(c.vips[2].address == addr("10.100.0.3"));
    CHECK(c.vips[2].protocol == 17);
    CHECK(c.vips[2].ports.empty());
    CHECK(c.vips[3].address == addr("fd00:100::1"));
    CHECK(c.vips[3].address.is_v6());
    CHECK(c.vips[3].ports == std::vector<std::uint16_t>{443});
    REQUIRE(c.peers.size() == 3);
    CHECK(c.peers[0].name == "mix1");
    CHECK(c.peers[0].weight == 1);
    CHECK(c.peers[1].name == "mix2");
    CHECK(c.peers[1].address == addr("10.0.0.12"));
    CHECK(c.peers[1].weight == 1);
    CHECK(c.peers[2].name == "mix3");
    CHECK(c.peers[2].weight == 2);
    CHECK(c.gossip.enabled);
    CHECK(c.gossip.port == 7946);
    REQUIRE(c.gossip.bind);
    CHECK(*c.gossip.bind == addr("10.0.0.11"));
    CHECK(c.gossip.cluster == "mixlb");
    CHECK(c.gossip.keyring == "/etc/mixlb/keyring");
    CHECK(c.gossip.probe_interval_ms == 1000);
    CHECK(c.gossip.probe_timeout_ms == 500);
    CHECK(c.gossip.interval_ms == 200);
    CHECK(c.gossip.suspicion_mult == 3);
    CHECK(c.gossip.push_pull_interval_ms == 30000);
    CHECK(c.gossip.rejoin_interval_ms == 30000);
  }

  TEST_CASE("the example sets every key and the reference documents each") {
    // Every key the loader accepts appears in the example, and every key of the
    // example is described in docs/configuration.md, so neither can fall behind.
    const std::vector<std::string> keys = {
        "node.name",
        "node.interface",
        "node.address",
        "node.weight",
        "node.admin_socket",
        "node.bpffs_dir",
        "node.log_level",
        "datapath.xdp_mode",
        "datapath.maglev_table_size",
        "datapath.conntrack_entries",
        "datapath.max_vips",
        "datapath.max_nodes",
        "neighbours.refresh_ms",
        "gossip.enabled",
        "gossip.port",
        "gossip.bind",
        "gossip.cluster",
        "gossip.keyring",
        "gossip.probe_interval_ms",
        "gossip.probe_timeout_ms",
        "gossip.interval_ms",
        "gossip.suspicion_mult",
        "gossip.push_pull_interval_ms",
        "gossip.rejoin_interval_ms",
        "gossip.seeds",
        "gossip.seeds[1]",
        "vip[0].address",
        "vip[0].protocol",
        "vip[0].ports",
        "vip[1].port",
        "vip[1].nodes",
        "vip[1].nodes[1]",
        "peer[0].name",
        "peer[0].address",
        "peer[0].weight",
    };
    const Config c = load_config_file(kExample);
    for (const std::string& key : keys) {
      CAPTURE(key);
      CHECK(c.locations.contains(key));
    }
    const std::string docs = read_text(kSourceDir + "/docs/configuration.md");
    for (const char* key :
         {"name", "interface", "address", "admin_socket", "bpffs_dir", "log_level", "xdp_mode",
          "maglev_table_size", "conntrack_entries", "max_vips", "max_nodes", "refresh_ms",
          "protocol", "ports", "port", "nodes", "weight", "enabled", "bind", "cluster",
          "keyring", "probe_interval_ms", "probe_timeout_ms", "interval_ms", "suspicion_mult",
          "push_pull_interval_ms", "rejoin_interval_ms"}) {
      const std::string quoted = std::string("`") + key + "`";
      CAPTURE(quoted);
      CHECK(docs.find(quoted) != std::string::npos);
    }
    for (const char* flag :
         {"--config", "--name", "--interface", "--address", "--admin-socket", "--bpffs-dir",
          "--xdp-mode", "--log-level", "--maglev-table-size", "--conntrack-entries", "--peer",
          "--vip", "--weight", "--gossip-port", "--cluster", "--keyring", "--no-gossip", "--help",
          "--version"}) {
      const std::string flag_name = flag;
      CAPTURE(flag_name);
      CHECK(docs.find(flag) != std::string::npos);
    }
  }

  TEST_CASE("a minimal file gets the defaults") {
    const Config c = parse_config("[node]\nname = \"edge-7\"\ninterface = \"ens3\"\n", "m.toml");
    CHECK(c.source == "m.toml");
    CHECK_FALSE(c.node.address);
    CHECK(c.node.admin_socket == "/run/mixlb/edge-7.sock");
    CHECK(c.node.bpffs_dir == "/sys/fs/bpf/mixlb");
    CHECK(c.node.log_level == "info");
    CHECK(c.datapath.xdp_mode == XdpMode::kAuto);
    CHECK(c.datapath.maglev_table_size == 65537);
    CHECK(c.datapath.conntrack_entries == 65536);
    CHECK(c.datapath.max_vips == 16);
    CHECK(c.datapath.max_nodes == 1024);
    CHECK(c.neighbours.refresh_ms == 1000);
    CHECK(c.node.weight == 1);
    CHECK(c.vips.empty());
    CHECK(c.peers.empty());
    CHECK(c.health.kind == HealthKind::kTcp);
    CHECK(c.health.interval_ms == 1000);
    CHECK(c.health.timeout_ms == 500);
    CHECK(c.health.rise == 2);
    CHECK(c.health.fall == 3);
  }

  TEST_CASE("each service gets its own check: TCP ports themselves, others only with health_port") {
    const Config c = parse_config(
        "[node]\nname = \"m\"\ninterface = \"eth0\"\n[health]\nkind = \"http\"\npath = \"/ok\"\n"
        // Two TCP ports checked by http on themselves.
        "[[vip]]\naddress = \"10.100.0.6\"\nports = [8443, 80]\n"
        // A TCP port checked by tcp.
        "[[vip]]\naddress = \"10.100.0.6\"\nports = [7000]\nhealth = \"tcp\"\n"
        // UDP: only with health_port; it shares port 80's check (same target).
        "[[vip]]\naddress = \"10.100.0.6\"\nprotocol = \"udp\"\nports = [53]\nhealth_port = 80\n"
        // UDP without health_port: not checked.
        "[[vip]]\naddress = \"10.100.0.6\"\nprotocol = \"udp\"\nports = [5353]\n"
        // Not checked at all.
        "[[vip]]\naddress = \"10.100.0.7\"\nports = [9000]\nhealth = \"none\"\n"
        // Its own path.
        "[[vip]]\naddress = \"10.100.0.8\"\nports = [80]\nhealth_path = \"/healthz\"\n",
        "m.toml");
    const auto checks = service_checks(c);
    std::vector<std::string> shown;
    for (const auto& check : checks)
      shown.push_back(fmt::format("{} -> {}", check_target(check.config), fmt::join(check.services, " ")));
    CHECK(shown == std::vector<std::string>{
                       "http 10.100.0.6:8443/ok -> 10.100.0.6:8443/tcp",
                       "http 10.100.0.6:80/ok -> 10.100.0.6:80/tcp 10.100.0.6:53/udp",
                       "tcp 10.100.0.6:7000 -> 10.100.0.6:7000/tcp",
                       "http 10.100.0.8:80/healthz -> 10.100.0.8:80/tcp",
                   });
    for (const auto& check : checks) {
      CHECK(check.config.interval == std::chrono::milliseconds(1000));
      CHECK(check.config.rise == 2);
    }
  }

  TEST_CASE("health = none everywhere, or no VIPs: no checks") {
    const Config none = parse_config(
        "[node]\nname = \"m\"\ninterface = \"eth0\"\n[health]\nkind = \"none\"\n"
        "[[vip]]\naddress = \"10.100.0.6\"\nports = [80]\n",
        "m.toml");
    CHECK(service_checks(none).empty());
    const Config empty = parse_config("[node]\nname = \"m\"\ninterface = \"eth0\"\n", "m.toml");
    CHECK(service_checks(empty).empty());
  }

  TEST_CASE("bad [health] settings name the line and the key") {
    const std::string node = "[node]\nname = \"mix1\"\ninterface = \"eth0\"\n";
    const BadInput cases[] = {
        {"unknown kind", "[health]\nkind = \"icmp\"\n",
         "mix1.toml:5: health.kind: expected tcp, http or none, got 'icmp'"},
        {"timeout not below interval", "[health]\ninterval_ms = 1000\ntimeout_ms = 1000\n",
         "mix1.toml:6: health.timeout_ms: 1000 ms is not shorter than health.interval_ms = 1000 ms"},
        {"relative path", "[health]\nkind = \"http\"\npath = \"healthz\"\n",
         "mix1.toml:6: health.path: 'healthz' is not an absolute HTTP path"},
        {"relative path of a VIP", "[[vip]]\naddress = \"10.100.0.1\"\nports = [80]\nhealth_path = \"x\"\n",
         "mix1.toml:7: vip[0].health_path: 'x' is not an absolute HTTP path"},
        {"a UDP VIP's check with nothing to check",
         "[[vip]]\naddress = \"10.100.0.1\"\nprotocol = \"udp\"\nports = [53]\nhealth = \"tcp\"\n",
         "mix1.toml:8: vip[0].health: a udp entry has no TCP port of its own to check: set "
         "health_port (the TCP port where the app answers for it)"},
        {"unknown kind of a VIP", "[[vip]]\naddress = \"10.100.0.1\"\nhealth = \"icmp\"\n",
         "mix1.toml:6: vip[0].health: expected tcp, http or none, got 'icmp'"},
        {"health_port out of range", "[[vip]]\naddress = \"10.100.0.1\"\nhealth_port = 0\n",
         "mix1.toml:6: vip[0].health_port: 0 is out of range 1..65535"},
        {"unknown key", "[health]\nretries = 3\n",
         "mix1.toml:5: health.retries: unknown key ([health] takes kind, path, interval_ms, "
         "timeout_ms, rise, fall)"},
    };
    for (const BadInput& c : cases) {
      const std::string what = c.what;
      CAPTURE(what);
      CHECK(parse_error(node + c.text) == std::string(c.message));
    }
  }

  TEST_CASE("[gossip] defaults") {
    const Config c = parse_config("[node]\nname = \"mix1\"\ninterface = \"eth0\"\n", "m.toml");
    CHECK(c.gossip.enabled);
    CHECK(c.gossip.port == 7946);
    CHECK_FALSE(c.gossip.bind);
    CHECK(c.gossip.cluster == "mixlb");
    CHECK(c.gossip.keyring.empty());
    CHECK(c.gossip.probe_interval_ms == 1000);
    CHECK(c.gossip.probe_timeout_ms == 500);
    CHECK(c.gossip.interval_ms == 200);
    CHECK(c.gossip.suspicion_mult == 3);
    CHECK(c.gossip.push_pull_interval_ms == 30000);
    CHECK(c.gossip.rejoin_interval_ms == 30000);
    // A Config built in code has the same defaults and passes as it is.
    Config in_code;
    in_code.node.name = "mix1";
    in_code.node.interface = "eth0";
    validate(in_code);
    CHECK(in_code.gossip.enabled);
    CHECK(in_code.gossip.cluster == "mixlb");
  }

  TEST_CASE("every [gossip] key is read from the file") {
    const Config c = parse_config(R"([node]
name = "mix1"
interface = "eth0"
address = "fd00::11"
[gossip]
enabled = false
port = 17946
bind = "fd00::11"
cluster = "prod-eu.1_a"
keyring = "keys/mixlb.keyring"
probe_interval_ms = 2000
probe_timeout_ms = 1999
interval_ms = 50
suspicion_mult = 5
push_pull_interval_ms = 60000
rejoin_interval_ms = 120000
)",
                                  "m.toml");
    CHECK_FALSE(c.gossip.enabled);
    CHECK(c.gossip.port == 17946);
    REQUIRE(c.gossip.bind);
    CHECK(*c.gossip.bind == addr("fd00::11"));
    CHECK(c.gossip.cluster == "prod-eu.1_a");
    CHECK(c.gossip.keyring == "keys/mixlb.keyring");  // relative paths are kept as written
    CHECK(c.gossip.probe_interval_ms == 2000);
    CHECK(c.gossip.probe_timeout_ms == 1999);
    CHECK(c.gossip.interval_ms == 50);
    CHECK(c.gossip.suspicion_mult == 5);
    CHECK(c.gossip.push_pull_interval_ms == 60000);
    CHECK(c.gossip.rejoin_interval_ms == 120000);
    CHECK(c.locations.at("gossip").line == 5);
    CHECK(c.locations.at("gossip.enabled").line == 6);
    CHECK(c.locations.at("gossip.rejoin_interval_ms").line == 16);
    // enabled = true is read too, not just its absence.
    const Config on = parse_config(
        "[node]\nname = \"mix1\"\ninterface = \"eth0\"\n[gossip]\nenabled = true\n", "m.toml");
    CHECK(on.gossip.enabled);
    CHECK(on.locations.contains("gossip.enabled"));
  }

  TEST_CASE("accepted [gossip] variants: range ends, any-address binds, a 64-byte cluster name") {
    const std::string node = "[node]\nname = \"mix1\"\ninterface = \"eth0\"\n";
    const std::string node_v4 = node + "address = \"10.0.0.11\"\n";
    const std::string node_v6 = node + "address = \"fd00::11\"\n";
    const std::string cluster64(64, 'c');
    const char* lows =
        "[gossip]\nport = 1\nprobe_interval_ms = 50\nprobe_timeout_ms = 10\ninterval_ms = 10\n"
        "suspicion_mult = 1\npush_pull_interval_ms = 1000\nrejoin_interval_ms = 1000\n";
    const char* highs =
        "[gossip]\nport = 65535\nprobe_interval_ms = 60000\nprobe_timeout_ms = 59999\n"
        "interval_ms = 60000\nsuspicion_mult = 20\npush_pull_interval_ms = 3600000\n"
        "rejoin_interval_ms = 3600000\n";
    struct Case {
      const char* what;
      std::string text;
    };
    const Case cases[] = {
        {"lowest values", node + lows},
        {"highest values", node + highs},
        {"0.0.0.0 with an IPv4 node", node_v4 + "[gossip]\nbind = \"0.0.0.0\"\n"},
        {":: with an IPv6 node", node_v6 + "[gossip]\nbind = \"::\"\n"},
        {"a bind address without node.address", node + "[gossip]\nbind = \"fd00::11\"\n"},
        {"another family with gossip off",
         node_v4 + "[gossip]\nenabled = false\nbind = \"fd00::11\"\n"},
        {"a 64-byte cluster name", node + "[gossip]\ncluster = \"" + cluster64 + "\"\n"},
    };
    for (const Case& c : cases) {
      const std::string what = c.what;
      CAPTURE(what);
      CHECK(parse_error(c.text) == "");
    }
    const Config any = parse_config(node_v6 + "[gossip]\nbind = \"::\"\n", "m.toml");
    REQUIRE(any.gossip.bind);
    CHECK(any.gossip.bind->is_v6());
  }

  TEST_CASE("bad [gossip] values name the line and the key") {
    // Lines 1-4 are a valid [node] with an IPv4 address; [gossip] is on line
    // 5, its first key on line 6.
    const std::string node =
        "[node]\nname = \"mix1\"\ninterface = \"eth0\"\naddress = \"10.0.0.11\"\n";
    const BadInput cases[] = {
        {"port 0", "[gossip]\nport = 0\n", "mix1.toml:6: gossip.port: 0 is out of range 1..65535"},
        {"port 65536", "[gossip]\nport = 65536\n",
         "mix1.toml:6: gossip.port: 65536 is out of range 1..65535"},
        {"probe interval too short", "[gossip]\nprobe_interval_ms = 49\n",
         "mix1.toml:6: gossip.probe_interval_ms: 49 is out of range 50..60000"},
        {"probe interval too long", "[gossip]\nprobe_interval_ms = 60001\n",
         "mix1.toml:6: gossip.probe_interval_ms: 60001 is out of range 50..60000"},
        {"probe timeout too short", "[gossip]\nprobe_timeout_ms = 9\n",
         "mix1.toml:6: gossip.probe_timeout_ms: 9 is out of range 10..60000"},
        {"probe timeout too long", "[gossip]\nprobe_timeout_ms = 60001\n",
         "mix1.toml:6: gossip.probe_timeout_ms: 60001 is out of range 10..60000"},
        {"gossip interval too short", "[gossip]\ninterval_ms = 9\n",
         "mix1.toml:6: gossip.interval_ms: 9 is out of range 10..60000"},
        {"gossip interval too long", "[gossip]\ninterval_ms = 60001\n",
         "mix1.toml:6: gossip.interval_ms: 60001 is out of range 10..60000"},
        {"suspicion multiplier 0", "[gossip]\nsuspicion_mult = 0\n",
         "mix1.toml:6: gossip.suspicion_mult: 0 is out of range 1..20"},
        {"suspicion multiplier 21", "[gossip]\nsuspicion_mult = 21\n",
         "mix1.toml:6: gossip.suspicion_mult: 21 is out of range 1..20"},
        {"push-pull too often", "[gossip]\npush_pull_interval_ms = 999\n",
         "mix1.toml:6: gossip.push_pull_interval_ms: 999 is out of range 1000..3600000"},
        {"push-pull too rare", "[gossip]\npush_pull_interval_ms = 3600001\n",
         "mix1.toml:6: gossip.push_pull_interval_ms: 3600001 is out of range 1000..3600000"},
        {"rejoin too often", "[gossip]\nrejoin_interval_ms = 999\n",
         "mix1.toml:6: gossip.rejoin_interval_ms: 999 is out of range 1000..3600000"},
        {"rejoin too rare", "[gossip]\nrejoin_interval_ms = 3600001\n",
         "mix1.toml:6: gossip.rejoin_interval_ms: 3600001 is out of range 1000..3600000"},
        {"enabled as an integer", "[gossip]\nenabled = 1\n",
         "mix1.toml:6: gossip.enabled: expected a boolean, got an integer"},
        {"enabled as a string", "[gossip]\nenabled = \"false\"\n",
         "mix1.toml:6: gossip.enabled: expected a boolean, got a string"},
        {"port as a string", "[gossip]\nport = \"7946\"\n",
         "mix1.toml:6: gossip.port: expected an integer, got a string"},
        {"cluster as an integer", "[gossip]\ncluster = 7\n",
         "mix1.toml:6: gossip.cluster: expected a string, got an integer"},
        {"probe timeout equal to the interval",
         "[gossip]\nprobe_interval_ms = 500\n\nprobe_timeout_ms = 500\n",
         "mix1.toml:8: gossip.probe_timeout_ms: 500 ms is not shorter than "
         "gossip.probe_interval_ms = 500 ms"},
        {"probe timeout above the default interval", "[gossip]\nprobe_timeout_ms = 1500\n",
         "mix1.toml:6: gossip.probe_timeout_ms: 1500 ms is not shorter than "
         "gossip.probe_interval_ms = 1000 ms"},
        {"cluster name with a space", "[gossip]\ncluster = \"prod eu\"\n",
         "mix1.toml:6: gossip.cluster: 'prod eu' is not a valid cluster name: use 1..64 characters "
         "of A-Z, a-z, 0-9, '.', '_' and '-'"},
        {"empty cluster name", "[gossip]\ncluster = \"\"\n",
         "mix1.toml:6: gossip.cluster: '' is not a valid cluster name: use 1..64 characters of "
         "A-Z, a-z, 0-9, '.', '_' and '-'"},
        {"cluster name of 65 bytes",
         "[gossip]\ncluster = "
         "\"ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\"\n",
         "mix1.toml:6: gossip.cluster: "
         "'ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc' is not a valid "
         "cluster name: use 1..64 characters of A-Z, a-z, 0-9, '.', '_' and '-'"},
        {"empty keyring path", "[gossip]\nkeyring = \"\"\n",
         "mix1.toml:6: gossip.keyring: must not be empty"},
        {"bind not an address", "[gossip]\nbind = \"eth0\"\n",
         "mix1.toml:6: gossip.bind: 'eth0' is not an IP address"},
        {"multicast bind", "[gossip]\nbind = \"239.0.0.1\"\n",
         "mix1.toml:6: gossip.bind: 239.0.0.1 is not a unicast address"},
        {"broadcast bind", "[gossip]\nbind = \"255.255.255.255\"\n",
         "mix1.toml:6: gossip.bind: 255.255.255.255 is not a unicast address"},
        {"link-local bind", "[gossip]\nbind = \"fe80::11\"\n",
         "mix1.toml:6: gossip.bind: fe80::11 is a link-local address; use a global or "
         "unique-local one"},
        {"IPv6 bind for an IPv4 node", "[gossip]\nbind = \"fd00::11\"\n",
         "mix1.toml:6: gossip.bind: fd00::11 is IPv6 but node.address 10.0.0.11 is IPv4; gossip "
         "binds in the family of the node's address"},
        {"IPv6 any-address for an IPv4 node", "[gossip]\nbind = \"::\"\n",
         "mix1.toml:6: gossip.bind: :: is IPv6 but node.address 10.0.0.11 is IPv4; gossip binds "
         "in the family of the node's address"},
        {"unknown key", "[gossip]\nretry_join = [\"10.0.0.12\"]\n",
         "mix1.toml:6: gossip.retry_join: unknown key ([gossip] takes enabled, port, bind, cluster, "
         "keyring, insecure, probe_interval_ms, probe_timeout_ms, interval_ms, suspicion_mult, "
         "push_pull_interval_ms, rejoin_interval_ms, seeds, flow_grace_ms)"},
    };
    for (const BadInput& c : cases) {
      const std::string what = c.what;
      CAPTURE(what);
      CHECK(parse_error(node + c.text) == std::string(c.message));
    }
  }

  TEST_CASE("the life-cycle keys: run_dir, on_stop, leave_timeout_ms, flow_grace_ms") {
    const std::string node =
        "[node]\nname = \"mix1\"\ninterface = \"eth0\"\naddress = \"10.0.0.11\"\n";
    const Config defaults = parse_config(node, "mix1.toml");
    CHECK(defaults.node.run_dir == "/run/mixlb");
    CHECK(defaults.node.admin_socket == "/run/mixlb/mix1.sock");
    CHECK(defaults.node.on_stop == StopAction::kRestart);
    CHECK(defaults.node.leave_timeout_ms == 30000);
    CHECK(defaults.gossip.flow_grace_ms == 60000);

    const Config set = parse_config(node +
                                        "run_dir = \"/run/lb\"\non_stop = \"leave\"\n"
                                        "leave_timeout_ms = 5000\n[gossip]\nflow_grace_ms = 5000\n",
                                    "mix1.toml");
    CHECK(set.node.admin_socket == "/run/lb/mix1.sock");
    CHECK(set.node.on_stop == StopAction::kLeave);
    CHECK(set.node.leave_timeout_ms == 5000);
    CHECK(set.gossip.flow_grace_ms == 5000);

    const BadInput cases[] = {
        {"on_stop unknown", "on_stop = \"reboot\"\n",
         "mix1.toml:5: node.on_stop: expected restart or leave, got 'reboot'"},
        {"run_dir relative", "run_dir = \"run\"\n",
         "mix1.toml:5: node.run_dir: 'run' is not an absolute path"},
        {"leave timeout out of range", "leave_timeout_ms = 3600001\n",
         "mix1.toml:5: node.leave_timeout_ms: 3600001 is out of range 0..3600000"},
        {"grace out of range", "[gossip]\nflow_grace_ms = 3600001\n",
         "mix1.toml:6: gossip.flow_grace_ms: 3600001 is out of range 0..3600000"},
        {"a leave outlasting the peers' grace", "[gossip]\nflow_grace_ms = 20000\n",
         "mix1.toml:1: node.leave_timeout_ms: 30000 ms is longer than gossip.flow_grace_ms = "
         "20000 ms: the other nodes would stop forwarding this node's established flows before "
         "its leave ends"},
        {"a seed of the other family", "[[peer]]\nname = \"mix2\"\naddress = \"fd00::12\"\n",
         "mix1.toml:7: peer[0].address: fd00::12 is IPv6 but this node gossips over IPv4 "
         "(node.address 10.0.0.11); a gossip seed must be in the node's family"},
    };
    for (const BadInput& c : cases) {
      const std::string what = c.what;
      CAPTURE(what);
      CHECK(parse_error(node + c.text) == std::string(c.message));
    }
    // Without gossip the peers are static members, and families may mix.
    CHECK(parse_error(node + "[gossip]\nenabled = false\n[[peer]]\nname = \"mix2\"\n"
                             "address = \"fd00::12\"\n") == "");
    // The family comes from the node's own peer entry when node.address is unset.
    CHECK(parse_error("[node]\nname = \"mix1\"\ninterface = \"eth0\"\n[[peer]]\nname = \"mix1\"\n"
                      "address = \"fd00::11\"\n[[peer]]\nname = \"mix2\"\naddress = \"10.0.0.12\"\n") ==
          "mix1.toml:9: peer[1].address: 10.0.0.12 is IPv4 but this node gossips over IPv6 (this "
          "node's [[peer]] entry fd00::11); a gossip seed must be in the node's family");
    CHECK(args_error({"--name", "mix1", "--interface", "eth0", "--on-stop", "later"}) ==
          "--on-stop: expected restart or leave, got 'later'");
  }

  TEST_CASE("echoed values are cut and escaped: a 5 MB value or a NUL byte makes a one-line error") {
    const std::string huge(5 * 1024 * 1024, 'x');
    const std::string big = parse_error("[node]\nname = \"" + huge + "\"\ninterface = \"eth0\"\n");
    CHECK(big.size() < 300);
    CHECK(big.starts_with("mix1.toml:2: node.name: \"xxxx"));
    CHECK(big.find("(5242752 more bytes) is not a valid node name") != std::string::npos);
    const std::string nul = parse_error("[node]\nname = \"a\\u0000b\"\ninterface = \"eth0\"\n");
    CHECK(nul.starts_with("mix1.toml:2: node.name: \"a\\x00b\" is not a valid node name"));
    CHECK(nul.find('\0') == std::string::npos);
    // A quoted key holds anything too.
    const std::string key = parse_error("[node]\nname = \"mix1\"\ninterface = \"eth0\"\n\"a\\nb\" = 1\n");
    CHECK(key == "mix1.toml:4: \"node.a\\nb\": unknown key ([node] takes name, interface, address, weight, "
                 "admin_socket, run_dir, bpffs_dir, log_level, log_format, on_stop, leave_timeout_ms)");
    // Plain short values keep their single quotes.
    CHECK(args_error({"--name", "mix1", "--interface", "eth0", "--xdp-mode", "fast"}) ==
          "--xdp-mode: expected auto, native or generic, got 'fast'");
  }

  TEST_CASE("accepted variants") {
    SUBCASE("inline tables, a single port, protocol left out, the node in its own peer list") {
      const Config c = parse_config(R"(vip = [{ address = "10.100.0.9", port = 8080 }]
peer = [{ name = "mix1", address = "10.0.0.11" }, { name = "mix2", address = "10.0.0.12" }]
[node]
name = "mix1"
interface = "eth0.100"
address = "10.0.0.11"
[datapath]
xdp_mode = "generic"
maglev_table_size = 13
)",
                                    "m.toml");
      CHECK(c.datapath.xdp_mode == XdpMode::kGeneric);
      CHECK(c.datapath.maglev_table_size == 13);
      REQUIRE(c.vips.size() == 1);
      CHECK(c.vips[0].protocol == 6);
      CHECK(c.vips[0].ports == std::vector<std::uint16_t>{8080});
      CHECK(c.peers.size() == 2);
    }
    SUBCASE("the same port on two addresses, the range ends") {
      CHECK(parse_error(R"([node]
name = "a"
interface = "lo"
[datapath]
maglev_table_size = 1000003
conntrack_entries = 1024
max_vips = 2147
max_nodes = 2
[neighbours]
refresh_ms = 60000
[[vip]]
address = "10.100.0.1"
ports = [1, 65535]
[[vip]]
address = "10.100.0.2"
port = 1
)") == "");
    }
    SUBCASE("IPv6 nodes and VIPs, UDP, all ports next to an exact port, serving sets") {
      const Config c = parse_config(R"([node]
name = "mix1"
interface = "eth0"
address = "fd00::11"
[[vip]]
address = "fd00:100::1"
protocol = "udp"
[[vip]]
address = "fd00:100::1"
protocol = "udp"
port = 53
[[vip]]
address = "fd00:100::1"
ports = [53]
nodes = ["mix2"]
[[vip]]
address = "10.100.0.1"
nodes = ["mix2", "mix1"]
[[peer]]
name = "mix2"
address = "fd00::12"
)",
                                    "m.toml");
      REQUIRE(c.node.address);
      CHECK(c.node.address->is_v6());
      REQUIRE(c.vips.size() == 4);
      CHECK(c.vips[0].protocol == 17);
      CHECK(c.vips[0].ports.empty());
      CHECK(c.vips[1].ports == std::vector<std::uint16_t>{53});
      CHECK(c.vips[2].protocol == 6);
      CHECK(c.vips[2].nodes == std::vector<std::string>{"mix2"});
      CHECK(c.vips[3].ports.empty());
      CHECK(c.vips[3].nodes == std::vector<std::string>{"mix2", "mix1"});
    }
    SUBCASE("weights: the own entry sets node.weight, or agrees with it") {
      const std::string node = "[node]\nname = \"mix1\"\ninterface = \"eth0\"\n";
      const std::string peers =
          "[[peer]]\nname = \"mix1\"\naddress = \"10.0.0.11\"\nweight = 0\n"
          "[[peer]]\nname = \"mix2\"\naddress = \"10.0.0.12\"\nweight = 100\n";
      const Config set_by_entry = parse_config(node + peers, "m.toml");
      CHECK(set_by_entry.node.weight == 0);
      CHECK(set_by_entry.peers[1].weight == 100);
      const Config agreeing = parse_config(node + "weight = 0\n" + peers, "m.toml");
      CHECK(agreeing.node.weight == 0);
      // An own entry without a weight leaves node.weight alone.
      const Config unweighted = parse_config(
          node + "weight = 7\n[[peer]]\nname = \"mix1\"\naddress = \"10.0.0.11\"\n", "m.toml");
      CHECK(unweighted.node.weight == 7);
    }
    SUBCASE("own entry without node.address") {
      CHECK(parse_error(R"([node]
name = "mix1"
interface = "eth0"
[[peer]]
name = "mix1"
address = "10.0.0.99"
)") == "");
    }
  }

  TEST_CASE("TOML syntax errors carry file, line and column") {
    struct Case {
      const char* text;
      const char* prefix;
      const char* detail;
    };
    const Case cases[] = {
        {"[node]\nname = \"mix1\ninterface = \"eth0\"\n", "mix1.toml:2:13: ", "string"},
        {"[node]\nname = \"a\"\nname = \"b\"\n", "mix1.toml:3:8: ", "redefine"},
        {"[node\n", "mix1.toml:1:6: ", "table header"},
        {"[datapath]\nmax_vips = 99999999999999999999\n", "mix1.toml:2:32: ", "64 bits"},
    };
    for (const Case& c : cases) {
      const std::string text = c.text;
      CAPTURE(text);
      const std::string message = parse_error(c.text);
      CHECK(message.starts_with(c.prefix));
      CHECK(message.find(c.detail) != std::string::npos);
    }
  }

  TEST_CASE("bad structure and types are reported at their line") {
    const BadInput cases[] = {
        {"unknown table", "[node]\nname = \"mix1\"\ninterface = \"eth0\"\n\n[nodes]\nx = 1\n",
         "mix1.toml:5: nodes: unknown key (expected [node], [datapath], [neighbours], [conntrack], [sockets], [health], "
         "[gossip], [metrics], [[vip]] or [[peer]])"},
        {"unknown top-level key", "name = \"mix1\"\n",
         "mix1.toml:1: name: unknown key (expected [node], [datapath], [neighbours], [conntrack], [sockets], [health], "
         "[gossip], [metrics], [[vip]] or [[peer]])"},
        {"typo in [node]", "[node]\nname = \"mix1\"\ninterfce = \"eth0\"\n",
         "mix1.toml:3: node.interfce: unknown key ([node] takes name, interface, address, weight, "
         "admin_socket, run_dir, bpffs_dir, log_level, log_format, on_stop, leave_timeout_ms)"},
        {"typo in [datapath]",
         "[node]\nname = \"mix1\"\ninterface = \"eth0\"\n[datapath]\nmode = 1\n",
         "mix1.toml:5: datapath.mode: unknown key ([datapath] takes xdp_mode, maglev_table_size, "
         "conntrack_entries, half_open_entries, max_vips, max_nodes)"},
        {"typo in [neighbours]", "[neighbours]\nrefresh = 100\n",
         "mix1.toml:2: neighbours.refresh: unknown key ([neighbours] takes refresh_ms)"},
        {"typo in [[vip]]",
         "[node]\nname = \"mix1\"\ninterface = \"eth0\"\n[[vip]]\naddress = \"10.100.0.1\"\nport = "
         "80\n[[vip]]\nadress = \"10.100.0.2\"\n",
         "mix1.toml:8: vip[1].adress: unknown key ([[vip]] takes address, protocol, port, ports, "
         "nodes, health, health_port, health_path)"},
        {"typo in [[peer]]", "[[peer]]\nname = \"mix2\"\naddr = \"10.0.0.12\"\n",
         "mix1.toml:3: peer[0].addr: unknown key ([[peer]] takes name, address, weight)"},
        {"string expected", "[node]\nname = 5\n",
         "mix1.toml:2: node.name: expected a string, got an integer"},
        {"integer expected, got a string", "[datapath]\nmaglev_table_size = \"65537\"\n",
         "mix1.toml:2: datapath.maglev_table_size: expected an integer, got a string"},
        {"integer expected, got a float", "[datapath]\n\nmax_nodes = 10.0\n",
         "mix1.toml:3: datapath.max_nodes: expected an integer, got a floating-point number"},
        {"table expected", "node = 5\n", "mix1.toml:1: node: expected a table, got an integer"},
        {"[gossip] not a table", "gossip = true\n",
         "mix1.toml:1: gossip: expected a table, got a boolean"},
        {"[vip] instead of [[vip]]", "[vip]\naddress = \"10.100.0.1\"\n",
         "mix1.toml:1: vip: expected an array of tables ([[vip]] entries), got a table"},
        {"vip entry not a table", "vip = [1]\n",
         "mix1.toml:1: vip[0]: expected a table, got an integer"},
        {"peer list not an array", "peer = \"mix2\"\n",
         "mix1.toml:1: peer: expected an array of tables ([[peer]] entries), got a string"},
        {"ports not an array", "[[vip]]\naddress = \"10.100.0.1\"\nports = 80\n",
         "mix1.toml:3: vip[0].ports: expected an array of ports, got an integer"},
        {"port as a string", "[[vip]]\naddress = \"10.100.0.1\"\nports = [80,\n  \"443\"]\n",
         "mix1.toml:4: vip[0].ports[1]: expected an integer, got a string"},
        {"boolean address", "[[peer]]\nname = \"mix2\"\naddress = true\n",
         "mix1.toml:3: peer[0].address: expected a string, got a boolean"},
        {"nodes not an array", "[[vip]]\naddress = \"10.100.0.1\"\nnodes = \"mix1\"\n",
         "mix1.toml:3: vip[0].nodes: expected an array of node names, got a string"},
        {"nodes empty", "[[vip]]\naddress = \"10.100.0.1\"\nnodes = []\n",
         "mix1.toml:3: vip[0].nodes: must list at least one node (leave nodes out for every "
         "node)"},
        {"node name not a string", "[[vip]]\naddress = \"10.100.0.1\"\nnodes = [\"mix1\",\n 2]\n",
         "mix1.toml:4: vip[0].nodes[1]: expected a string, got an integer"},
        {"weight as a string", "[[peer]]\nname = \"mix2\"\nweight = \"2\"\n",
         "mix1.toml:3: peer[0].weight: expected an integer, got a string"},
    };
    for (const BadInput& c : cases) {
      const std::string what = c.what;
      CAPTURE(what);
      CHECK(parse_error(c.text) == std::string(c.message));
    }
  }

  TEST_CASE("bad [node] values") {
    // The [node] table sits on line 1; the key under test is on line 2 or 3.
    const BadInput cases[] = {
        {"name missing", "[node]\ninterface = \"eth0\"\n",
         "mix1.toml:1: node.name: required key is missing (or give --name)"},
        {"no [node] at all", "[datapath]\nmax_vips = 4\n",
         "mix1.toml:1: node.name: required key is missing (or give --name)"},
        {"name with a space", "[node]\nname = \"mix 1\"\ninterface = \"eth0\"\n",
         "mix1.toml:2: node.name: 'mix 1' is not a valid node name: use 1..63 characters of A-Z, "
         "a-z, 0-9, '.', '_' and '-'"},
        {"empty name", "[node]\nname = \"\"\ninterface = \"eth0\"\n",
         "mix1.toml:2: node.name: '' is not a valid node name: use 1..63 characters of A-Z, a-z, "
         "0-9, '.', '_' and '-'"},
        {"name of 64 characters",
         "[node]\nname = \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\n",
         "mix1.toml:2: node.name: "
         "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' "
         "is not a valid node name: use 1..63 characters of A-Z, a-z, 0-9, '.', '_' and '-'"},
        {"interface missing", "\n[node]\nname = \"mix1\"\n",
         "mix1.toml:2: node.interface: required key is missing (or give --interface)"},
        {"interface with a slash", "[node]\nname = \"mix1\"\ninterface = \"eth0/1\"\n",
         "mix1.toml:3: node.interface: 'eth0/1' is not a valid interface name: 1..15 bytes, not "
         "'.' "
         "or '..', without '/', ':' or whitespace"},
        {"interface of 16 bytes", "[node]\nname = \"mix1\"\ninterface = \"abcdefghijklmnop\"\n",
         "mix1.toml:3: node.interface: 'abcdefghijklmnop' is not a valid interface name: 1..15 "
         "bytes, not '.' or '..', without '/', ':' or whitespace"},
        {"interface with a space", "[node]\nname = \"mix1\"\ninterface = \"eth 0\"\n",
         "mix1.toml:3: node.interface: 'eth 0' is not a valid interface name: 1..15 bytes, not '.' "
         "or '..', without '/', ':' or whitespace"},
        {"interface '..'", "[node]\nname = \"mix1\"\ninterface = \"..\"\n",
         "mix1.toml:3: node.interface: '..' is not a valid interface name: 1..15 bytes, not '.' or "
         "'..', without '/', ':' or whitespace"},
        {"address not an address",
         "[node]\nname = \"mix1\"\ninterface = \"eth0\"\naddress = \"10.0.0.300\"\n",
         "mix1.toml:4: node.address: '10.0.0.300' is not an IP address"},
        {"link-local node address",
         "[node]\nname = \"mix1\"\ninterface = \"eth0\"\naddress = \"fe80::11\"\n",
         "mix1.toml:4: node.address: fe80::11 is a link-local address; use a global or "
         "unique-local one"},
        {"IPv4-mapped node address",
         "[node]\nname = \"mix1\"\ninterface = \"eth0\"\naddress = \"::ffff:10.0.0.11\"\n",
         "mix1.toml:4: node.address: ::ffff:10.0.0.11 is an IPv4-mapped address; write it as "
         "10.0.0.11"},
        {"unspecified IPv6 node address",
         "[node]\nname = \"mix1\"\ninterface = \"eth0\"\naddress = \"::\"\n",
         "mix1.toml:4: node.address: :: is not a unicast address"},
        {"weight above the Maglev limit",
         "[node]\nname = \"mix1\"\ninterface = \"eth0\"\nweight = 101\n",
         "mix1.toml:4: node.weight: 101 is out of range 0..100"},
        {"negative weight", "[node]\nname = \"mix1\"\ninterface = \"eth0\"\nweight = -1\n",
         "mix1.toml:4: node.weight: -1 is out of range 0..100"},
        {"unspecified node address",
         "[node]\nname = \"mix1\"\ninterface = \"eth0\"\naddress = \"0.0.0.0\"\n",
         "mix1.toml:4: node.address: 0.0.0.0 is not a unicast address"},
        {"empty admin socket",
         "[node]\nname = \"mix1\"\ninterface = \"eth0\"\nadmin_socket = \"\"\n",
         "mix1.toml:4: node.admin_socket: must not be empty"},
        {"admin socket too long",
         "[node]\nname = \"mix1\"\ninterface = \"eth0\"\nadmin_socket = "
         "\"/run/mixlb/"
         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
         "xxxxxxxxxxxxxxx.sock\"\n",
         "mix1.toml:4: node.admin_socket: "
         "'/run/mixlb/"
         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
         "xxxxxxxxxxxxxxx.sock' is 109 bytes long; a unix socket path holds at most 107"},
        {"relative bpffs dir",
         "[node]\nname = \"mix1\"\ninterface = \"eth0\"\nbpffs_dir = \"bpf\"\n",
         "mix1.toml:4: node.bpffs_dir: 'bpf' is not an absolute path"},
        {"unknown log level",
         "[node]\nname = \"mix1\"\ninterface = \"eth0\"\nlog_level = \"verbose\"\n",
         "mix1.toml:4: node.log_level: expected trace, debug, info, warn or error, got 'verbose'"},
    };
    for (const BadInput& c : cases) {
      const std::string what = c.what;
      CAPTURE(what);
      CHECK(parse_error(c.text) == std::string(c.message));
    }
  }

  TEST_CASE("bad [datapath] and [neighbours] values") {
    // Lines 1-3 are a valid [node]; [datapath] starts on line 4.
    const std::string node = "[node]\nname = \"mix1\"\ninterface = \"eth0\"\n";
    const BadInput cases[] = {
        {"xdp mode", "[datapath]\nxdp_mode = \"fast\"\n",
         "mix1.toml:5: datapath.xdp_mode: expected auto, native or generic, got 'fast'"},
        {"table size not prime", "[datapath]\nmaglev_table_size = 65536\n",
         "mix1.toml:5: datapath.maglev_table_size: 65536 is not a prime (Maglev needs a prime "
         "table "
         "size; 65537 is one)"},
        {"table size too small", "[datapath]\nmaglev_table_size = 2\n",
         "mix1.toml:5: datapath.maglev_table_size: 2 is out of range 3..1000003"},
        {"table size too large", "[datapath]\nmaglev_table_size = 1000033\n",
         "mix1.toml:5: datapath.maglev_table_size: 1000033 is out of range 3..1000003"},
        {"conntrack too small", "[datapath]\nconntrack_entries = 1023\n",
         "mix1.toml:5: datapath.conntrack_entries: 1023 is out of range 1024..67108864"},
        {"conntrack too large", "[datapath]\nconntrack_entries = 67108865\n",
         "mix1.toml:5: datapath.conntrack_entries: 67108865 is out of range 1024..67108864"},
        {"max_vips 0", "[datapath]\nmax_vips = 0\n",
         "mix1.toml:5: datapath.max_vips: 0 is out of range 1..4096"},
        {"max_vips negative", "[datapath]\nmax_vips = -3\n",
         "mix1.toml:5: datapath.max_vips: -3 is out of range 1..4096"},
        {"max_nodes 1", "[datapath]\nmax_nodes = 1\n",
         "mix1.toml:5: datapath.max_nodes: 1 is out of range 2..65536"},
        {"refresh too fast", "[neighbours]\nrefresh_ms = 99\n",
         "mix1.toml:5: neighbours.refresh_ms: 99 is out of range 100..60000"},
        {"Maglev array over 32 bits", "[datapath]\nmaglev_table_size = 1000003\nmax_vips = 2148\n",
         "mix1.toml:6: datapath.max_vips: max_vips * 2 * maglev_table_size = 2148 * 2 * 1000003 = "
         "4296012888 Maglev slots do not fit in 32 bits; lower one of them"},
        {"table not larger than the node count",
         "[datapath]\nmaglev_table_size = 3\n[[peer]]\nname = \"mix2\"\naddress = \"10.0.0.12\"\n"
         "[[peer]]\nname = \"mix3\"\naddress = \"10.0.0.13\"\n",
         "mix1.toml:5: datapath.maglev_table_size: 3 slots are too few for 3 nodes; the table must "
         "be larger than the number of nodes"},
    };
    for (const BadInput& c : cases) {
      const std::string what = c.what;
      CAPTURE(what);
      CHECK(parse_error(node + c.text) == std::string(c.message));
    }
  }

  TEST_CASE("bad [[vip]] entries") {
    // Lines 1-3 are a valid [node]; the first [[vip]] header is on line 4.
    const std::string node = "[node]\nname = \"mix1\"\ninterface = \"eth0\"\n";
    const BadInput cases[] = {
        {"port out of range (the reference example)",
         "[[vip]]\naddress = \"10.100.0.1\"\nport = 80\n[[vip]]\naddress = \"10.100.0.2\"\nport = "
         "81\n[[vip]]\naddress = \"10.100.0.3\"\n\n\nports = [80, 70000]\n",
         "mix1.toml:14: vip[2].ports[1]: 70000 is out of range 1..65535"},
        {"port 0", "[[vip]]\naddress = \"10.100.0.1\"\nport = 0\n",
         "mix1.toml:6: vip[0].port: 0 is out of range 1..65535"},
        {"negative port", "[[vip]]\naddress = \"10.100.0.1\"\nports = [-80]\n",
         "mix1.toml:6: vip[0].ports[0]: -80 is out of range 1..65535"},
        {"empty ports", "[[vip]]\naddress = \"10.100.0.1\"\nports = []\n",
         "mix1.toml:6: vip[0].ports: must list at least one port"},
        {"both port and ports", "[[vip]]\nport = 80\naddress = \"10.100.0.1\"\nports = [81]\n",
         "mix1.toml:7: vip[0].ports: give either port or ports, not both (port is on line 5)"},
        {"address missing", "[[vip]]\nport = 80\n",
         "mix1.toml:4: vip[0].address: required key is missing"},
        {"address not an address", "[[vip]]\naddress = \"vip.example\"\nport = 80\n",
         "mix1.toml:5: vip[0].address: 'vip.example' is not an IP address"},
        {"multicast VIP", "[[vip]]\naddress = \"239.1.1.1\"\nport = 80\n",
         "mix1.toml:5: vip[0].address: 239.1.1.1 is not a unicast address"},
        {"IPv6 multicast VIP", "[[vip]]\naddress = \"ff02::1\"\nport = 80\n",
         "mix1.toml:5: vip[0].address: ff02::1 is not a unicast address"},
        {"link-local VIP", "[[vip]]\naddress = \"fe80::1\"\n",
         "mix1.toml:5: vip[0].address: fe80::1 is a link-local address; use a global or "
         "unique-local one"},
        {"unknown protocol", "[[vip]]\naddress = \"10.100.0.1\"\nprotocol = \"sctp\"\nport = 53\n",
         "mix1.toml:6: vip[0].protocol: expected tcp or udp, got 'sctp'"},
        {"duplicate across entries",
         "[[vip]]\naddress = \"10.100.0.1\"\nports = [80, 443]\n[[vip]]\naddress = "
         "\"10.100.0.1\"\nport = 443\n",
         "mix1.toml:9: vip[1].port: 10.100.0.1:443/tcp is already configured by vip[0].ports[1] "
         "(line 6)"},
        {"duplicate within one entry",
         "[[vip]]\naddress = \"10.100.0.1\"\nports = [80, 443,\n80]\n",
         "mix1.toml:7: vip[0].ports[2]: 10.100.0.1:80/tcp is already configured by vip[0].ports[0] "
         "(line 6)"},
        {"duplicate UDP port",
         "[[vip]]\naddress = \"10.100.0.1\"\nprotocol = \"udp\"\nport = 53\n[[vip]]\naddress = "
         "\"10.100.0.1\"\nprotocol = \"udp\"\nports = [53]\n",
         "mix1.toml:11: vip[1].ports[0]: 10.100.0.1:53/udp is already configured by vip[0].port "
         "(line 7)"},
        {"duplicate IPv6 port",
         "[[vip]]\naddress = \"fd00:100::1\"\nport = 443\n[[vip]]\naddress = "
         "\"fd00:100:0::1\"\nport = 443\n",
         "mix1.toml:9: vip[1].port: [fd00:100::1]:443/tcp is already configured by vip[0].port "
         "(line 6)"},
        {"all ports twice",
         "[[vip]]\naddress = \"10.100.0.1\"\n[[vip]]\naddress = \"10.100.0.2\"\n[[vip]]\n"
         "address = \"10.100.0.1\"\nprotocol = \"tcp\"\n",
         "mix1.toml:8: vip[2]: 10.100.0.1:*/tcp is already configured by vip[0] (line 4)"},
        {"more entries than max_vips",
         "[datapath]\nmax_vips = 2\n[[vip]]\naddress = \"10.100.0.1\"\nports = [80,\n443,\n8443]\n",
         "mix1.toml:10: vip[0].ports[2]: this is VIP entry 3, more than datapath.max_vips = 2 "
         "(each address and port is one entry, and so is an address with all ports)"},
        {"an all-ports entry counts against max_vips",
         "[datapath]\nmax_vips = 2\n[[vip]]\naddress = \"10.100.0.1\"\nports = [80, 443]\n"
         "[[vip]]\naddress = \"10.100.0.1\"\n",
         "mix1.toml:9: vip[1]: this is VIP entry 3, more than datapath.max_vips = 2 (each address "
         "and port is one entry, and so is an address with all ports)"},
        {"a serving node that is not a member",
         "[[vip]]\naddress = \"10.100.0.1\"\nnodes = [\"mix1\",\n\"mix9\"]\n",
         "mix1.toml:7: vip[0].nodes[1]: 'mix9' is neither this node ('mix1') nor one of its peers"},
        {"a serving node twice",
         "[[peer]]\nname = \"mix2\"\naddress = \"10.0.0.12\"\n[[vip]]\naddress = "
         "\"10.100.0.1\"\nnodes = [\"mix2\", \"mix1\",\n\"mix2\"]\n",
         "mix1.toml:10: vip[0].nodes[2]: 'mix2' is already listed as vip[0].nodes[0] (line 9)"},
    };
    for (const BadInput& c : cases) {
      const std::string what = c.what;
      CAPTURE(what);
      CHECK(parse_error(node + c.text) == std::string(c.message));
    }
  }

  TEST_CASE("bad [[peer]] entries") {
    // node129599 and node732382 have the same FNV-1a node id.
    REQUIRE(node_id_for("node129599") == node_id_for("node732382"));
    // Lines 1-4 are a valid [node] with an address; the first [[peer]] header
    // is on line 5.
    const std::string node =
        "[node]\nname = \"mix1\"\ninterface = \"eth0\"\naddress = \"10.0.0.11\"\n";
    const BadInput cases[] = {
        {"name missing", "[[peer]]\naddress = \"10.0.0.12\"\n",
         "mix1.toml:5: peer[0].name: required key is missing"},
        {"address missing", "[[peer]]\nname = \"mix2\"\n\n[[peer]]\nname = \"mix3\"\n",
         "mix1.toml:5: peer[0].address: required key is missing"},
        {"bad name", "[[peer]]\nname = \"mix/2\"\naddress = \"10.0.0.12\"\n",
         "mix1.toml:6: peer[0].name: 'mix/2' is not a valid node name: use 1..63 characters of "
         "A-Z, "
         "a-z, 0-9, '.', '_' and '-'"},
        {"multicast IPv6 peer", "[[peer]]\nname = \"mix2\"\naddress = \"ff02::12\"\n",
         "mix1.toml:7: peer[0].address: ff02::12 is not a unicast address"},
        {"link-local peer", "[[peer]]\nname = \"mix2\"\naddress = \"fe80::12\"\n",
         "mix1.toml:7: peer[0].address: fe80::12 is a link-local address; use a global or "
         "unique-local one"},
        {"weight out of range",
         "[[peer]]\nname = \"mix2\"\naddress = \"10.0.0.12\"\nweight = 101\n",
         "mix1.toml:8: peer[0].weight: 101 is out of range 0..100"},
        {"own entry with another weight",
         "weight = 2\n[[peer]]\nname = \"mix2\"\naddress = \"10.0.0.12\"\n[[peer]]\nname = "
         "\"mix1\"\naddress = \"10.0.0.11\"\nweight = 3\n",
         "mix1.toml:12: peer[1].weight: this is the entry of this node ('mix1') but its weight 3 "
         "differs from node.weight 2"},
        {"broadcast peer", "[[peer]]\nname = \"mix2\"\naddress = \"255.255.255.255\"\n",
         "mix1.toml:7: peer[0].address: 255.255.255.255 is not a unicast address"},
        {"duplicate name",
         "[[peer]]\nname = \"mix2\"\naddress = \"10.0.0.12\"\n[[peer]]\nname = \"mix3\"\naddress = "
         "\"10.0.0.13\"\n[[peer]]\nname = \"mix2\"\naddress = \"10.0.0.14\"\n",
         "mix1.toml:12: peer[2].name: 'mix2' is already used by peer[0] (line 5)"},
        {"duplicate address",
         "[[peer]]\nname = \"mix2\"\naddress = \"10.0.0.12\"\n[[peer]]\nname = \"mix3\"\naddress = "
         "\"10.0.0.12\"\n",
         "mix1.toml:10: peer[1].address: 10.0.0.12 is already the address of 'mix2', peer[0] (line "
         "5)"},
        {"own entry with another address", "[[peer]]\nname = \"mix1\"\naddress = \"10.0.0.99\"\n",
         "mix1.toml:7: peer[0].address: this is the entry of this node ('mix1') but its address "
         "10.0.0.99 differs from node.address 10.0.0.11"},
        {"another name on this node's address",
         "[[peer]]\nname = \"mix2\"\naddress = \"10.0.0.11\"\n",
         "mix1.toml:7: peer[0].address: 10.0.0.11 is node.address, the address of this node "
         "('mix1'), but this entry is named 'mix2'"},
        {"node ids collide between peers",
         "[[peer]]\nname = \"node129599\"\naddress = \"10.0.0.12\"\n[[peer]]\nname = "
         "\"node732382\"\naddress = \"10.0.0.13\"\n",
         "mix1.toml:9: peer[1].name: 'node732382' and 'node129599' have the same node id "
         "0xf0870842; "
         "rename one of them"},
        {"more nodes than max_nodes",
         "[[peer]]\nname = \"mix2\"\naddress = \"10.0.0.12\"\n[[peer]]\nname = \"mix3\"\naddress = "
         "\"10.0.0.13\"\n[datapath]\nmax_nodes = 2\n",
         "mix1.toml:8: peer[1]: 3 nodes (this one and its peers) are more than datapath.max_nodes "
         "= 2"},
    };
    for (const BadInput& c : cases) {
      const std::string what = c.what;
      CAPTURE(what);
      CHECK(parse_error(node + c.text) == std::string(c.message));
    }
    // A peer whose id collides with this node's own name.
    CHECK(parse_error("[node]\nname = \"node129599\"\ninterface = \"eth0\"\n[[peer]]\nname = "
                      "\"node732382\"\naddress = \"10.0.0.13\"\n") ==
          "mix1.toml:5: peer[0].name: 'node732382' and 'node129599' have the same node id "
          "0xf0870842; rename one of them");
  }

  TEST_CASE("load_config_file reports a file it cannot read") {
    const std::string missing = "/nonexistent/mixlb.toml";
    CHECK_THROWS_WITH_AS(load_config_file(missing),
                         "/nonexistent/mixlb.toml: cannot open the config file: No such file or "
                         "directory",
                         ConfigError);
    CHECK_THROWS_WITH_AS(load_config_file("/"), "/: cannot read the config file: Is a directory",
                         ConfigError);
    // Errors inside a file name the path it was loaded from.
    TempFile file("[node]\nname = \"mix1\"\ninterface = \"eth0\"\nlog_level = \"loud\"\n");
    CHECK_THROWS_WITH_AS(
        load_config_file(file.path()),
        (file.path() + ":4: node.log_level: expected trace, debug, info, warn or error, got 'loud'")
            .c_str(),
        ConfigError);
  }

  TEST_CASE("validate() on a Config built in code") {
    Config c;
    c.node.name = "mix1";
    c.node.interface = "eth0";
    validate(c);
    CHECK(c.node.admin_socket == "/run/mixlb/mix1.sock");
    c.vips.push_back(VipConfig{addr("10.100.0.1"), 6, {}, {}});
    validate(c);  // every port
    c.vips[0].ports = {0};
    CHECK_THROWS_WITH_AS(validate(c), "vip[0].ports[0]: 0 is out of range 1..65535", ConfigError);
    c.vips[0].ports = {80};
    validate(c);
    c.vips[0].protocol = 1;
    CHECK_THROWS_WITH_AS(validate(c), "vip[0].protocol: expected tcp or udp, got protocol 1",
                         ConfigError);
    c.vips[0].protocol = 17;
    c.vips[0].nodes = {"mix2"};
    CHECK_THROWS_WITH_AS(validate(c),
                         "vip[0].nodes[0]: 'mix2' is neither this node ('mix1') nor one of its "
                         "peers",
                         ConfigError);
    c.vips[0].nodes = {"mix1"};
    validate(c);
    c.node.weight = 101;
    CHECK_THROWS_WITH_AS(validate(c), "node.weight: 101 is out of range 0..100", ConfigError);
    c.node.weight = 1;
    // Built in code, the own entry's weight and node.weight both count as set.
    c.peers.push_back(PeerConfig{"mix1", addr("10.0.0.11"), 4});
    CHECK_THROWS_WITH_AS(validate(c),
                         "peer[0].weight: this is the entry of this node ('mix1') but its weight 4 "
                         "differs from node.weight 1",
                         ConfigError);
    c.node.weight = 4;
    validate(c);
    c.peers.clear();
    c.datapath.max_vips = 0;
    CHECK_THROWS_WITH_AS(validate(c), "datapath.max_vips: 0 is out of range 1..4096", ConfigError);
    c.datapath.max_vips = 16;
    c.peers.push_back(PeerConfig{"mix2", Address{}});
    CHECK_THROWS_WITH_AS(validate(c), "peer[0].address: required key is missing", ConfigError);
    c.peers[0].address = addr("fd00::12");
    c.peers[0].weight = 1000;
    CHECK_THROWS_WITH_AS(validate(c), "peer[0].weight: 1000 is out of range 0..100", ConfigError);
    c.peers.clear();
    // [gossip] values set in code meet the same limits.
    c.gossip.suspicion_mult = 0;
    CHECK_THROWS_WITH_AS(validate(c), "gossip.suspicion_mult: 0 is out of range 1..20",
                         ConfigError);
    c.gossip.suspicion_mult = 3;
    c.gossip.probe_timeout_ms = 1000;
    CHECK_THROWS_WITH_AS(validate(c),
                         "gossip.probe_timeout_ms: 1000 ms is not shorter than "
                         "gossip.probe_interval_ms = 1000 ms",
                         ConfigError);
    c.gossip.probe_timeout_ms = 500;
    c.gossip.cluster = "a/b";
    CHECK_THROWS_WITH_AS(validate(c),
                         "gossip.cluster: 'a/b' is not a valid cluster name: use 1..64 characters "
                         "of A-Z, a-z, 0-9, '.', '_' and '-'",
                         ConfigError);
    c.gossip.cluster = "mixlb";
    // Built in code, an empty keyring path is plaintext gossip, not an error.
    c.gossip.keyring.clear();
    c.gossip.bind = Address{};
    CHECK_THROWS_WITH_AS(validate(c),
                         "gossip.bind: holds no address (leave it unset for the default)",
                         ConfigError);
    c.gossip.bind = addr("0.0.0.0");
    c.node.address = addr("fd00::11");
    CHECK_THROWS_WITH_AS(validate(c),
                         "gossip.bind: 0.0.0.0 is IPv4 but node.address fd00::11 is IPv6; gossip "
                         "binds in the family of the node's address",
                         ConfigError);
    c.gossip.enabled = false;
    validate(c);
  }

  TEST_CASE("flags override the file") {
    const auto c = from_args({"--config", kExample, "--name=mix2", "--address", "10.0.0.12",
                              "--interface", "ens5", "--admin-socket=/tmp/m.sock", "--bpffs-dir",
                              "/sys/fs/bpf/other", "--xdp-mode=native", "--log-level", "debug",
                              "--maglev-table-size", "251", "--conntrack-entries=2048"});
    REQUIRE(c);
    CHECK(c->source == kExample);
    CHECK(c->node.name == "mix2");
    CHECK(c->node.address == addr("10.0.0.12"));
    CHECK(c->node.interface == "ens5");
    CHECK(c->node.admin_socket == "/tmp/m.sock");
    CHECK(c->node.bpffs_dir == "/sys/fs/bpf/other");
    CHECK(c->datapath.xdp_mode == XdpMode::kNative);
    CHECK(c->node.log_level == "debug");
    CHECK(c->datapath.maglev_table_size == 251);
    CHECK(c->datapath.conntrack_entries == 2048);
    // What no flag touched stays as the file says.
    CHECK(c->datapath.max_vips == 16);
    CHECK(c->vips.size() == 4);
    CHECK(c->peers.size() == 3);
    // -c is --config; the last of a repeated flag wins.
    const auto d = from_args({"-c", kExample, "--xdp-mode", "native", "--xdp-mode", "generic"});
    REQUIRE(d);
    CHECK(d->datapath.xdp_mode == XdpMode::kGeneric);
    CHECK(d->node.name == "mix1");
  }

  TEST_CASE("flags are applied before validation") {
    // The file alone is invalid (no interface, a table size that is not a
    // prime); the flags fix it.
    TempFile file("[node]\nname = \"mix1\"\n[datapath]\nmaglev_table_size = 65536\n");
    const auto c =
        from_args({"--config", file.path(), "--interface", "eth1", "--maglev-table-size", "251"});
    REQUIRE(c);
    CHECK(c->node.interface == "eth1");
    CHECK(c->datapath.maglev_table_size == 251);
    // Without them the file's own lines are reported.
    CHECK(args_error({"--config", file.path(), "--interface", "eth1"}) ==
          file.path() +
              ":4: datapath.maglev_table_size: 65536 is not a prime (Maglev needs a prime table "
              "size; 65537 is one)");
    CHECK(args_error({"--config", file.path(), "--maglev-table-size", "251"}) ==
          file.path() + ":1: node.interface: required key is missing (or give --interface)");
    // A word a choice key does not take is refused where the file says it,
    // as any other type error is: a flag cannot make that line right.
    TempFile loud("[node]\nname = \"mix1\"\nlog_level = \"loud\"\n");
    CHECK(args_error({"--config", loud.path(), "--interface", "eth1", "--log-level", "warn"}) ==
          loud.path() + ":3: node.log_level: expected trace, debug, info, warn or error, got 'loud'");
  }

  TEST_CASE("--peer and --vip replace the file's lists") {
    const auto c =
        from_args({"--config", kExample, "--peer", "mix1=10.0.0.11", "--peer=b=10.0.0.21", "--vip",
                   "10.100.1.1:8080", "--vip=10.100.1.1:8443"});
    REQUIRE(c);
    REQUIRE(c->peers.size() == 2);
    CHECK(c->peers[0].name == "mix1");
    CHECK(c->peers[0].address == addr("10.0.0.11"));
    CHECK(c->peers[1].name == "b");
    CHECK(c->peers[1].address == addr("10.0.0.21"));
    REQUIRE(c->vips.size() == 2);
    CHECK(c->vips[0].address == addr("10.100.1.1"));
    CHECK(c->vips[0].protocol == 6);
    CHECK(c->vips[0].ports == std::vector<std::uint16_t>{8080});
    CHECK(c->vips[1].ports == std::vector<std::uint16_t>{8443});
    // The file's entries are gone, their locations too.
    CHECK_FALSE(c->locations.contains("peer[2]"));
    CHECK_FALSE(c->locations.contains("vip[0].ports"));
    CHECK(c->locations.at("vip[0]").flag == "--vip");
    CHECK(c->peers[0].weight == 1);
    // Without --peer or --vip the file's lists stay.
    const auto d =
        from_args({"--config", kExample, "--peer", "mix1=10.0.0.11", "--peer", "mix2=10.0.0.12"});
    REQUIRE(d);
    CHECK(d->peers.size() == 2);
    CHECK(d->vips.size() == 4);
    // The file's VIPs still name their serving nodes, which must still be members.
    const std::string example = read_text(kExample);
    const auto nodes_line =
        std::count(example.begin(), example.begin() + example.find("\nnodes = ["), '\n') + 2;
    CHECK(args_error({"--config", kExample, "--peer", "mix1=10.0.0.11"}) ==
          kExample + ":" + std::to_string(nodes_line) +
              ": vip[1].nodes[1]: 'mix2' is neither this node ('mix1') nor one of its peers");
  }

  TEST_CASE("--vip takes UDP, IPv6 in brackets and every port; --peer and --weight take weights") {
    const auto c = from_args({"--name",      "mix1",
                              "--interface", "eth0",
                              "--address",   "fd00::11",
                              "--vip",       "10.100.0.1:53/udp",
                              "--vip",       "[fd00:100::1]:443/tcp",
                              "--vip",       "10.100.0.1:*/tcp",
                              "--vip",       "[fd00:100::1]:*",
                              "--vip",       "10.100.0.1:80",
                              "--peer",      "mix2=10.0.0.12@0",
                              "--peer",      "mix3=fd00::13@100",
                              "--peer",      "mix4=10.0.0.14",
                              "--weight",    "5",
                              "--no-gossip"});
    REQUIRE(c);
    CHECK(c->node.address == addr("fd00::11"));
    CHECK(c->node.weight == 5);
    REQUIRE(c->vips.size() == 5);
    CHECK(c->vips[0].address == addr("10.100.0.1"));
    CHECK(c->vips[0].protocol == 17);
    CHECK(c->vips[0].ports == std::vector<std::uint16_t>{53});
    CHECK(c->vips[1].address == addr("fd00:100::1"));
    CHECK(c->vips[1].protocol == 6);
    CHECK(c->vips[1].ports == std::vector<std::uint16_t>{443});
    CHECK(c->vips[2].protocol == 6);
    CHECK(c->vips[2].ports.empty());
    CHECK(c->vips[3].address == addr("fd00:100::1"));
    CHECK(c->vips[3].ports.empty());
    CHECK(c->vips[4].ports == std::vector<std::uint16_t>{80});
    REQUIRE(c->peers.size() == 3);
    CHECK(c->peers[0].weight == 0);
    CHECK(c->peers[1].address == addr("fd00::13"));
    CHECK(c->peers[1].weight == 100);
    CHECK(c->peers[2].weight == 1);
    CHECK(c->locations.at("peer[0].weight").flag == "--peer");
    CHECK_FALSE(c->locations.contains("peer[2].weight"));

    // This node's own --peer weight sets node.weight, or must agree with --weight.
    const auto own = from_args({"--name", "mix1", "--interface", "eth0", "--peer",
                                "mix1=10.0.0.11@3", "--peer", "mix2=10.0.0.12"});
    REQUIRE(own);
    CHECK(own->node.weight == 3);
    CHECK(args_error({"--name", "mix1", "--interface", "eth0", "--weight", "2", "--peer",
                      "mix1=10.0.0.11@3"}) ==
          "--peer: this is the entry of this node ('mix1') but its weight 3 differs from "
          "node.weight 2");
    // Without a weight in the own entry, --weight stands.
    const auto flag_only = from_args(
        {"--name", "mix1", "--interface", "eth0", "--weight", "0", "--peer", "mix1=10.0.0.11"});
    REQUIRE(flag_only);
    CHECK(flag_only->node.weight == 0);
  }

  TEST_CASE("flags alone make a config") {
    const auto c = from_args({"--name", "solo", "--interface", "eth0", "--vip", "10.100.0.1:80"});
    REQUIRE(c);
    CHECK(c->source.empty());
    CHECK(c->node.name == "solo");
    CHECK(c->node.admin_socket == "/run/mixlb/solo.sock");
    REQUIRE(c->vips.size() == 1);
    CHECK(args_error({"--interface", "eth0"}) == "--name: required when no --config file is given");
    CHECK(args_error({"--name", "solo"}) == "--interface: required when no --config file is given");
  }

  TEST_CASE("--gossip-port, --cluster, --keyring and --no-gossip override [gossip]") {
    TempFile file(
        "[node]\nname = \"mix1\"\ninterface = \"eth0\"\n[gossip]\nport = 7000\ncluster = "
        "\"blue\"\nkeyring = \"/etc/mixlb/blue.keys\"\n");
    const auto file_only = from_args({"--config", file.path()});
    REQUIRE(file_only);
    CHECK(file_only->gossip.enabled);
    CHECK(file_only->gossip.port == 7000);
    CHECK(file_only->gossip.cluster == "blue");
    CHECK(file_only->gossip.keyring == "/etc/mixlb/blue.keys");

    const auto c = from_args({"--config", file.path(), "--gossip-port", "7947", "--cluster=green",
                              "--keyring", "green.keys", "--no-gossip"});
    REQUIRE(c);
    CHECK_FALSE(c->gossip.enabled);
    CHECK(c->gossip.port == 7947);
    CHECK(c->gossip.cluster == "green");
    CHECK(c->gossip.keyring == "green.keys");
    CHECK(c->locations.at("gossip.enabled").flag == "--no-gossip");
    CHECK(c->locations.at("gossip.port").flag == "--gossip-port");
    CHECK(c->locations.at("gossip.cluster").flag == "--cluster");
    CHECK(c->locations.at("gossip.keyring").flag == "--keyring");

    // --no-gossip overrides the file's enabled = true, and works without a file.
    TempFile enabled("[node]\nname = \"mix1\"\ninterface = \"eth0\"\n[gossip]\nenabled = true\n");
    const auto off = from_args({"--config", enabled.path(), "--no-gossip"});
    REQUIRE(off);
    CHECK_FALSE(off->gossip.enabled);
    const auto flags_only = from_args({"--no-gossip", "--name", "solo", "--interface", "eth0"});
    REQUIRE(flags_only);
    CHECK_FALSE(flags_only->gossip.enabled);
    CHECK(flags_only->node.name == "solo");  // the flag after it was not taken as its value

    // A flag's value is judged, and its error names the flag, not the file.
    TempFile bad_file(
        "[node]\nname = \"mix1\"\ninterface = \"eth0\"\n[gossip]\ncluster = \"a b\"\n");
    CHECK(args_error({"--config", bad_file.path()}) ==
          bad_file.path() +
              ":5: gossip.cluster: 'a b' is not a valid cluster name: use 1..64 characters of "
              "A-Z, a-z, 0-9, '.', '_' and '-'");
    const auto fixed = from_args({"--config", bad_file.path(), "--cluster", "ab"});
    REQUIRE(fixed);
    CHECK(fixed->gossip.cluster == "ab");
  }

  TEST_CASE("gossip.seeds: addresses become seeds, host names seed names, at the gossip port unless given") {
    const std::string text =
        "[node]\nname = \"mix1\"\ninterface = \"eth0\"\naddress = \"10.0.0.11\"\n"
        "[gossip]\nport = 7000\nseeds = [\"10.0.0.14\", \"10.0.0.15:7001\", \"peers.mixlb.test\", "
        "\"peers-b.mixlb.test.:8000\", \"x_1\"]\n"
        "[[peer]]\nname = \"mix2\"\naddress = \"10.0.0.12\"\n";
    const Config c = parse_config(text, "mix1.toml");
    CHECK(c.gossip.seeds.size() == 5);
    CHECK(c.locations.at("gossip.seeds[2]").line == 7);
    const GossipSettings s = gossip_settings(c, addr("10.0.0.11"), {}, std::nullopt);
    CHECK(s.seeds == std::vector<gossip::Address>{gossip::Address::v4(10, 0, 0, 12, 7000),
                                                  gossip::Address::v4(10, 0, 0, 14, 7000),
                                                  gossip::Address::v4(10, 0, 0, 15, 7001)});
    CHECK(s.seed_names == std::vector<gossip::SeedName>{{"peers.mixlb.test", 7000},
                                                        {"peers-b.mixlb.test.", 8000},
                                                        {"x_1", 7000}});

    // IPv6: brackets for a port, a bare address without one.
    const Config v6 = parse_config(
        "[node]\nname = \"mix1\"\ninterface = \"eth0\"\naddress = \"fd00::11\"\n"
        "[gossip]\nseeds = [\"[fd00::14]:7001\", \"fd00::15\", \"[fd00::16]\", \"peers6.test\"]\n",
        "mix1.toml");
    const GossipSettings s6 = gossip_settings(v6, addr("fd00::11"), {}, std::nullopt);
    REQUIRE(s6.seeds.size() == 3);
    CHECK(s6.seeds[0] == *gossip::Address::parse("[fd00::14]:7001"));
    CHECK(s6.seeds[1] == *gossip::Address::parse("[fd00::15]:7946"));
    CHECK(s6.seeds[2] == *gossip::Address::parse("[fd00::16]:7946"));
    CHECK(s6.seed_names == std::vector<gossip::SeedName>{{"peers6.test", 7946}});

    // Each --seed adds one; together they replace the file's list.
    TempFile file(text);
    const auto flags = from_args({"--config", file.path(), "--seed", "a.test", "--seed=10.0.0.20:99"});
    REQUIRE(flags);
    CHECK(flags->gossip.seeds == std::vector<std::string>{"a.test", "10.0.0.20:99"});
    CHECK(flags->locations.at("gossip.seeds").flag == "--seed");
    CHECK_FALSE(flags->locations.contains("gossip.seeds[2]"));
    CHECK(args_error({"--config", file.path(), "--seed", "a b"}) ==
          "--seed: 'a b' is neither an IP address nor a host name (labels of letters, digits and "
          "'-', separated by dots)");
  }

  TEST_CASE("[conntrack]: defaults, 0 turns a rule off, a value below the smallest is refused") {
    const Config d = parse_config("[node]\nname = \"m\"\ninterface = \"eth0\"\n", "m.toml");
    CHECK(d.conntrack.sweep_interval_ms == 10000);
    CHECK(d.conntrack.udp_idle_ms == 120000);
    CHECK(d.conntrack.tcp_closing_idle_ms == 30000);
    CHECK(d.conntrack.tcp_idle_ms == 3600000);
    const Config off = parse_config(
        "[node]\nname = \"m\"\ninterface = \"eth0\"\n[conntrack]\nsweep_interval_ms = 0\ntcp_idle_ms = 0\n",
        "m.toml");
    CHECK(off.conntrack.sweep_interval_ms == 0);
    CHECK(off.conntrack.tcp_idle_ms == 0);
    CHECK(parse_error("[node]\nname = \"m\"\ninterface = \"eth0\"\n[conntrack]\nsweep_interval_ms = 50\n") ==
          "mix1.toml:5: conntrack.sweep_interval_ms: 50 is out of range: 0 (off), or 100..3600000");
    CHECK(parse_error("[node]\nname = \"m\"\ninterface = \"eth0\"\n[conntrack]\nudp_idle_ms = 120\n") ==
          "mix1.toml:5: conntrack.udp_idle_ms: 120 is out of range: 0 (off), or 1000..86400000");
    CHECK(parse_error("[node]\nname = \"m\"\ninterface = \"eth0\"\n[conntrack]\ntcp_idle_ms = 86400001\n") ==
          "mix1.toml:5: conntrack.tcp_idle_ms: 86400001 is out of range 0..86400000");
  }

  TEST_CASE("[conntrack] invalidation: the default, each mode, and what is refused") {
    const std::string node = "[node]\nname = \"m\"\ninterface = \"eth0\"\n";
    const Config d = parse_config(node, "m.toml");
    CHECK(d.conntrack.invalidation == InvalidationMode::kTargeted);
    CHECK(d.conntrack.invalidation_port == 9066);
    CHECK(d.conntrack.invalidation_group == Address::parse("224.0.0.88"));
    CHECK(d.conntrack.invalidation_max_age_ms == 30000);
    for (const char* mode : {"off", "gossip", "multicast", "broadcast", "targeted"}) {
      CAPTURE(mode);
      const Config c = parse_config(node + "[conntrack]\ninvalidation = \"" + mode + "\"\n", "m.toml");
      CHECK(to_string(c.conntrack.invalidation) == mode);
    }
    CHECK(parse_error(node + "[conntrack]\ninvalidation = \"flood\"\n") ==
          "mix1.toml:5: conntrack.invalidation: expected targeted, multicast, broadcast, gossip or off, got 'flood'");
    CHECK(parse_error(node + "[conntrack]\ninvalidation_group = \"10.0.0.1\"\n") ==
          "mix1.toml:5: conntrack.invalidation_group: 10.0.0.1 is not an IPv4 multicast address (224.0.0.0/4)");
    CHECK(parse_error(node + "[conntrack]\ninvalidation = \"gossip\"\n[gossip]\nenabled = false\n") ==
          "mix1.toml:5: conntrack.invalidation: `gossip` needs gossip, which is off (gossip.enabled = false)");
    CHECK(parse_error(node + "[conntrack]\ninvalidation_port = 0\n") ==
          "mix1.toml:5: conntrack.invalidation_port: 0 is out of range 1..65535");
  }

  TEST_CASE("datapath.half_open_entries: 0 sizes it from conntrack_entries; below 1024 is refused") {
    const std::string node = "[node]\nname = \"m\"\ninterface = \"eth0\"\n";
    const Config d = parse_config(node, "m.toml");
    CHECK(d.datapath.half_open_entries == 0);
    CHECK(half_open_entries(datapath_settings(d)) == MIXLB_DEFAULT_CT_ENTRIES / 4);
    const Config small = parse_config(node + "[datapath]\nconntrack_entries = 2048\n", "m.toml");
    CHECK(half_open_entries(datapath_settings(small)) == 1024);
    const Config set = parse_config(node + "[datapath]\nhalf_open_entries = 5000\n", "m.toml");
    CHECK(half_open_entries(datapath_settings(set)) == 8192);  // a power of two
    CHECK(parse_error(node + "[datapath]\nhalf_open_entries = 512\n") ==
          "mix1.toml:5: datapath.half_open_entries: 512 is out of range: 0 (a quarter of "
          "conntrack_entries), or 1024..67108864");
  }

  TEST_CASE("bad gossip.seeds entries name the line, the entry and what is wrong") {
    const std::string node =
        "[node]\nname = \"mix1\"\ninterface = \"eth0\"\naddress = \"10.0.0.11\"\n[gossip]\n";
    const BadInput cases[] = {
        {"not an array", "seeds = \"a.test\"\n",
         "mix1.toml:6: gossip.seeds: expected an array of strings, got a string"},
        {"not a string", "seeds = [\"a.test\", 7]\n",
         "mix1.toml:6: gossip.seeds[1]: expected a string, got an integer"},
        {"space in a name", "seeds = [\"a.test\",\n  \"b .test\"]\n",
         "mix1.toml:7: gossip.seeds[1]: 'b .test' is neither an IP address nor a host name "
         "(labels of letters, digits and '-', separated by dots)"},
        {"broken IPv4 address", "seeds = [\"10.0.0.300\"]\n",
         "mix1.toml:6: gossip.seeds[0]: '10.0.0.300' is neither an IP address nor a host name "
         "(labels of letters, digits and '-', separated by dots)"},
        {"label starting with '-'", "seeds = [\"-a.test\"]\n",
         "mix1.toml:6: gossip.seeds[0]: '-a.test' is neither an IP address nor a host name "
         "(labels of letters, digits and '-', separated by dots)"},
        {"empty label", "seeds = [\"a..test\"]\n",
         "mix1.toml:6: gossip.seeds[0]: 'a..test' is neither an IP address nor a host name "
         "(labels of letters, digits and '-', separated by dots)"},
        {"port 0", "seeds = [\"a.test:0\"]\n",
         "mix1.toml:6: gossip.seeds[0]: port 0 is out of range 1..65535"},
        {"port 65536", "seeds = [\"10.0.0.14:65536\"]\n",
         "mix1.toml:6: gossip.seeds[0]: port 65536 is out of range 1..65535"},
        {"port not a number", "seeds = [\"a.test:http\"]\n",
         "mix1.toml:6: gossip.seeds[0]: 'a.test:http' is not a seed: write HOST, HOST:PORT, an "
         "IPv4 address (with :PORT or without) or an IPv6 address in brackets ([2001:db8::5] or "
         "[2001:db8::5]:7946)"},
        {"empty port", "seeds = [\"a.test:\"]\n",
         "mix1.toml:6: gossip.seeds[0]: 'a.test:' is not a seed: write HOST, HOST:PORT, an IPv4 "
         "address (with :PORT or without) or an IPv6 address in brackets ([2001:db8::5] or "
         "[2001:db8::5]:7946)"},
        {"unclosed bracket", "seeds = [\"[fd00::1\"]\n",
         "mix1.toml:6: gossip.seeds[0]: '[fd00::1' is not a seed: write HOST, HOST:PORT, an IPv4 "
         "address (with :PORT or without) or an IPv6 address in brackets ([2001:db8::5] or "
         "[2001:db8::5]:7946)"},
        {"IPv4 in brackets", "seeds = [\"[10.0.0.14]:7946\"]\n",
         "mix1.toml:6: gossip.seeds[0]: '10.0.0.14' is in brackets: only an IPv6 address goes in them"},
        {"other family", "seeds = [\"[fd00::14]\"]\n",
         "mix1.toml:6: gossip.seeds[0]: fd00::14 is IPv6 but this node gossips over IPv4 "
         "(node.address 10.0.0.11); a gossip seed must be in the node's family"},
    };
    for (const auto& c : cases) {
      CAPTURE(c.what);
      CHECK(parse_error(node + c.text) == std::string(c.message));
    }
  }

  TEST_CASE("bad flags name the flag") {
    struct Case {
      std::vector<std::string> args;
      const char* message;
    };
    const std::vector<std::string> base = {"--name", "mix1", "--interface", "eth0"};
    const Case cases[] = {
        {{"--xdp-mode", "fast"}, "--xdp-mode: expected auto, native or generic, got 'fast'"},
        {{"--xdp-mode=fast"}, "--xdp-mode: expected auto, native or generic, got 'fast'"},
        {{"--log-level", "loud"},
         "--log-level: expected trace, debug, info, warn or error, got 'loud'"},
        {{"--name", "bad name"},
         "--name: 'bad name' is not a valid node name: use 1..63 characters of A-Z, a-z, 0-9, '.', "
         "'_' and '-'"},
        {{"--interface", "a/b"},
         "--interface: 'a/b' is not a valid interface name: 1..15 bytes, not '.' or '..', without "
         "'/', ':' or whitespace"},
        {{"--address", "10.0.0"}, "--address: '10.0.0' is not an IP address"},
        {{"--address", "fe80::1"},
         "--address: fe80::1 is a link-local address; use a global or unique-local one"},
        {{"--weight", "101"}, "--weight: 101 is out of range 0..100"},
        {{"--weight", "x"}, "--weight: expected an integer, got 'x'"},
        {{"--bpffs-dir", "bpf"}, "--bpffs-dir: 'bpf' is not an absolute path"},
        {{"--admin-socket="}, "--admin-socket: must not be empty"},
        {{"--maglev-table-size", "12"},
         "--maglev-table-size: 12 is not a prime (Maglev needs a prime table size; 65537 is one)"},
        {{"--maglev-table-size", "2"}, "--maglev-table-size: 2 is out of range 3..1000003"},
        {{"--maglev-table-size", "65k"}, "--maglev-table-size: expected an integer, got '65k'"},
        {{"--conntrack-entries="}, "--conntrack-entries: expected an integer, got ''"},
        {{"--conntrack-entries", "99999999999999999999"},
         "--conntrack-entries: expected an integer, got '99999999999999999999'"},
        {{"--conntrack-entries", "100"}, "--conntrack-entries: 100 is out of range 1024..67108864"},
        {{"--peer", "mix2"}, "--peer: expected NAME=ADDRESS[@WEIGHT], got 'mix2'"},
        {{"--peer", "mix2=10.0.0.12@"},
         "--peer: expected NAME=ADDRESS[@WEIGHT], got 'mix2=10.0.0.12@'"},
        {{"--peer", "mix2=10.0.0.12@heavy"},
         "--peer: expected NAME=ADDRESS[@WEIGHT], got 'mix2=10.0.0.12@heavy'"},
        {{"--peer", "mix2=10.0.0.12@101"}, "--peer: weight 101 is out of range 0..100"},
        {{"--peer", "mix2=ff02::2"}, "--peer: ff02::2 is not a unicast address"},
        {{"--peer", "mix2=10.0.0.x"}, "--peer: '10.0.0.x' is not an IP address"},
        {{"--peer", "mix2=10.0.0.12", "--peer", "mix2=10.0.0.13"},
         "--peer: 'mix2' is already used by an earlier --peer"},
        {{"--peer", "mix2=10.0.0.12", "--peer", "mix3=10.0.0.12"},
         "--peer: 10.0.0.12 is already the address of 'mix2', an earlier --peer"},
        {{"--peer", "=10.0.0.12"}, "--peer: expected NAME=ADDRESS[@WEIGHT], got '=10.0.0.12'"},
        {{"--vip", "10.100.0.1"},
         "--vip: expected ADDRESS:PORT, ADDRESS:* or either with /tcp or /udp after it, got "
         "'10.100.0.1'"},
        {{"--vip", "10.100.0.1:http"},
         "--vip: expected ADDRESS:PORT, ADDRESS:* or either with /tcp or /udp after it, got "
         "'10.100.0.1:http'"},
        {{"--vip", "10.100.0.1:80/"}, "--vip: expected tcp or udp after '/', got ''"},
        {{"--vip", "10.100.0.1:80/sctp"}, "--vip: expected tcp or udp after '/', got 'sctp'"},
        {{"--vip", "10.100.0.1:0"}, "--vip: port 0 is out of range 1..65535"},
        {{"--vip", "10.100.0.1:65536"}, "--vip: port 65536 is out of range 1..65535"},
        {{"--vip", "fd00::1:80"}, "--vip: an IPv6 address goes in brackets, as in [fd00::1]:80"},
        {{"--vip", "[fd00::1]80"},
         "--vip: expected ADDRESS:PORT, ADDRESS:* or either with /tcp or /udp after it, got "
         "'[fd00::1]80'"},
        {{"--vip", "[fd00::1]"},
         "--vip: expected ADDRESS:PORT, ADDRESS:* or either with /tcp or /udp after it, got "
         "'[fd00::1]'"},
        {{"--vip", "[fd00::x]:80"}, "--vip: 'fd00::x' is not an IP address"},
        {{"--vip", "[ff02::1]:80"}, "--vip: ff02::1 is not a unicast address"},
        {{"--vip", "10.100.0.1:80", "--vip", "10.100.0.1:80"},
         "--vip: 10.100.0.1:80/tcp is already configured by an earlier --vip"},
        {{"--vip", "[fd00::1]:*/udp", "--vip", "[fd00::1]:*/udp"},
         "--vip: [fd00::1]:*/udp is already configured by an earlier --vip"},
        {{"--bogus", "1"}, "unknown flag '--bogus' (see --help)"},
        {{"extra"}, "unexpected argument 'extra' (see --help)"},
        {{"--max-vips=3"}, "unknown flag '--max-vips' (see --help)"},
        {{"--help=yes"}, "--help: takes no value"},
        {{"--no-gossip=1"}, "--no-gossip: takes no value"},
        {{"--no-gossip="}, "--no-gossip: takes no value"},
        {{"--no-gossip", "1"}, "unexpected argument '1' (see --help)"},
        {{"--gossip"}, "unknown flag '--gossip' (see --help)"},
        {{"--gossip-port", "0"}, "--gossip-port: 0 is out of range 1..65535"},
        {{"--gossip-port=65536"}, "--gossip-port: 65536 is out of range 1..65535"},
        {{"--gossip-port", "7946x"}, "--gossip-port: expected an integer, got '7946x'"},
        {{"--gossip-port"}, "--gossip-port: missing value"},
        {{"--cluster", "prod/eu"},
         "--cluster: 'prod/eu' is not a valid cluster name: use 1..64 characters of A-Z, a-z, "
         "0-9, '.', '_' and '-'"},
        {{"--cluster="},
         "--cluster: '' is not a valid cluster name: use 1..64 characters of A-Z, a-z, 0-9, '.', "
         "'_' and '-'"},
        {{"--keyring="}, "--keyring: must not be empty"},
        {{"--keyring"}, "--keyring: missing value"},
        {{"--name"}, "--name: missing value"},
        {{"--config", "/nonexistent/m.toml"},
         "/nonexistent/m.toml: cannot open the config file: No such file or directory"},
    };
    for (const Case& c : cases) {
      std::vector<std::string> args = base;
      args.insert(args.end(), c.args.begin(), c.args.end());
      const std::string expected = c.message;
      CAPTURE(expected);
      CHECK(args_error(args) == expected);
    }
  }

  TEST_CASE("--help and --version print and return nullopt") {
    for (const char* flag : {"--help", "-h"}) {
      const std::string flag_name = flag;
      CAPTURE(flag_name);
      std::ostringstream out;
      CHECK_FALSE(from_args({"--name", "mix1", flag, "--bogus"}, out));
      CHECK(out.str().starts_with("Usage: mixlb [--config FILE] [flags]\n"));
      for (const char* documented :
           {"--config", "--peer NAME=ADDR[@WEIGHT]", "--vip ADDR:PORT[/PROTO]", "--weight N",
            "--xdp-mode", "--maglev-table-size", "--conntrack-entries", "--gossip-port N",
            "--cluster NAME", "--keyring FILE", "--no-gossip ", "--version"}) {
        const std::string text = documented;
        CAPTURE(text);
        CHECK(out.str().find(documented) != std::string::npos);
      }
    }
    // --version prints the project version from meson.build.
    const std::string meson = read_text(kSourceDir + "/meson.build");
    const std::string marker = "version : '";
    const std::size_t at = meson.find(marker);
    REQUIRE(at != std::string::npos);
    const std::string version =
        meson.substr(at + marker.size(), meson.find('\'', at + marker.size()) - at - marker.size());
    CHECK(mixlb_version() == version);
    std::ostringstream out;
    CHECK_FALSE(from_args({"--version"}, out));
    CHECK(out.str() == "mixlb " + version + "\n");
  }

  TEST_CASE("to_string(XdpMode)") {
    CHECK(to_string(XdpMode::kAuto) == "auto");
    CHECK(to_string(XdpMode::kNative) == "native");
    CHECK(to_string(XdpMode::kGeneric) == "generic");
  }

}  // TEST_SUITE("config")

}  // namespace mixlb
