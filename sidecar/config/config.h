#pragma once
// The sidecar's configuration: one TOML file (documented in
// conf/mixlb.example.toml and docs/configuration.md) plus command-line flags
// that override it. Loading validates everything up front; a bad value raises
// ConfigError whose message names the file, the line and the key, so the
// daemon can refuse to start with one clear sentence.
//
// Config is nested the way the file is: one struct per [section], then the
// [[vip]] and [[peer]] lists. Every scalar key of a section is one row of the
// key table (config/keys.h) — its flag, type, range, default and help — and
// that table alone drives reading the file, the flags, the unknown-key
// hints, --help and the reference in docs/configuration.md (a test keeps
// the document equal to what the table generates).
//
// Reading and checking are separate steps so that flags can fill in what the
// file leaves out before anything is judged: the reader records where each
// key came from (Config::locations), and validate() uses that to point its
// errors at a file line or at the flag that set the value.
#include <cstdint>
#include <iosfwd>
#include <expected>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "kernel/address.h"
#include "kernel/xdp_mode.h"
#include "mixlb_abi.h"

namespace mixlb {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What the sidecar does when it is told to stop (SIGTERM, SIGINT).
enum class StopAction { kRestart, kLeave };
std::string_view to_string(StopAction action);

// How the sidecar checks its own app.
enum class HealthKind { kTcp, kHttp, kNone };
std::string_view to_string(HealthKind kind);

// How the sidecar writes its log lines: for people, or one JSON object per
// line for log shippers.
enum class LogFormat { kText, kJson };
std::string_view to_string(LogFormat format);

struct NodeSection {
  std::string name;
  std::string interface;
  std::optional<Address> address;  // default: the interface's first IPv4 address
  std::uint32_t weight = 1;        // this node's Maglev weight, 0 = drained
  std::string admin_socket;        // default: <run_dir>/<name>.sock
  // The instance lock (<run_dir>/<node>.lock) and the record of what the
  // sidecar changed on the host (<run_dir>/<node>.host.json) live here.
  std::string run_dir = "/run/mixlb";
  std::string bpffs_dir = "/sys/fs/bpf/mixlb";  // maps pinned under <bpffs_dir>/<name>/
  std::string log_level = "info";
  LogFormat log_format = LogFormat::kText;
  // What SIGTERM means: kRestart keeps the data path for the next sidecar,
  // kLeave leaves the cluster and removes everything (as `mixlbctl leave`).
  StopAction on_stop = StopAction::kRestart;
  std::uint32_t leave_timeout_ms = 30000;  // how long a leave serves established connections
};

struct DatapathSection {
  XdpMode xdp_mode = XdpMode::kAuto;
  std::uint32_t maglev_table_size = MIXLB_DEFAULT_RING_SIZE;  // prime
  std::uint32_t conntrack_entries = MIXLB_DEFAULT_CT_ENTRIES;
  std::uint32_t half_open_entries = 0;  // 0: conntrack_entries / 4, at least 1024
  // The Maglev array holds max_vips * 2 * maglev_table_size ids.
  std::uint32_t max_vips = MIXLB_DEFAULT_MAX_VIPS;
  std::uint32_t max_nodes = MIXLB_DEFAULT_MAX_NODES;
};

struct NeighboursSection {
  std::uint32_t refresh_ms = 1000;
};

// The sweeper: idle connection-table entries removed per protocol
// (sidecar/kernel/conntrack_walk.h, sweep_conntrack). 0 = never / off.
// How a closed connection's entry is deleted on the other nodes
// (sidecar/invalidator.h).
enum class InvalidationMode { kOff, kGossip, kMulticast, kBroadcast, kTargeted };
std::string_view to_string(InvalidationMode mode);

struct ConntrackSection {
  std::uint32_t sweep_interval_ms = 10000;
  std::uint32_t udp_idle_ms = 120000;
  std::uint32_t tcp_closing_idle_ms = 30000;
  std::uint32_t tcp_idle_ms = 3600000;
  std::uint32_t close_batch_ms = 10;
  InvalidationMode invalidation = InvalidationMode::kTargeted;
  std::uint32_t invalidation_port = 9066;
  std::optional<Address> invalidation_group = Address::parse("224.0.0.88");
  std::uint32_t invalidation_max_age_ms = 30000;
};

// The reuseport selector (sidecar/reuseport/): which of the app's sockets
// gets each new flow of a VIP port.
enum class SocketPolicy { kHash, kCpu };
struct SocketsSection {
  bool enabled = true;
  SocketPolicy policy = SocketPolicy::kHash;
  std::uint32_t udp_idle_ms = 30000;
  std::uint32_t udp_flows = 65536;
};

// How the sidecar checks its app's services (sidecar/health.h): the
// defaults of every [[vip]] entry's own check.
struct HealthSection {
  HealthKind kind = HealthKind::kTcp;
  std::string path = "/";          // http only
  std::uint32_t interval_ms = 1000;
  std::uint32_t timeout_ms = 500;
  std::uint32_t rise = 2;
  std::uint32_t fall = 3;
};

// Cluster membership (gossip/). Off: static membership from [[peer]].
// One entry of gossip.seeds: an IP address (then `address` is set) or a
// host name resolved at every join, and the port.
struct GossipSeed {
  std::string host;  // as written, without the port (and without brackets)
  std::optional<Address> address;
  std::uint16_t port = 0;
  friend bool operator==(const GossipSeed&, const GossipSeed&) = default;
};

struct GossipSection {
  bool enabled = true;
  std::uint32_t port = 7946;      // UDP and TCP, the same on every node
  std::optional<Address> bind;    // default: the node's address; 0.0.0.0 or :: = any
  std::string cluster = "mixlb";  // 1..64 bytes of [A-Za-z0-9._-]; in every packet's AEAD
  std::string keyring;            // "" = plaintext gossip, only with `insecure`
  bool insecure = false;          // allow gossip without a keyring (warned at start)
  std::uint32_t probe_interval_ms = 1000;
  std::uint32_t probe_timeout_ms = 500;
  std::uint32_t interval_ms = 200;
  std::uint32_t suspicion_mult = 3;
  std::uint32_t push_pull_interval_ms = 30000;
  std::uint32_t rejoin_interval_ms = 30000;
  // More seeds beside [[peer]]: "HOST", "HOST:PORT", "10.0.0.5",
  // "[2001:db8::5]:7946". Host names are resolved at every (re-)join.
  std::vector<std::string> seeds;  // read with parse_gossip_seed()
  // How long this node keeps forwarding established flows to a member that
  // died or left (new flows go elsewhere at once).
  std::uint32_t flow_grace_ms = 60000;
};

// The Prometheus endpoint (sidecar/metrics/).
struct MetricsSection {
  // "127.0.0.1:9650", "[::1]:9650", or "off".
  std::string listen = "127.0.0.1:9650";
  // Derived by validate(): nullopt when off.
  std::optional<Address> address;
  std::uint16_t port = 0;
};

struct VipConfig {
  Address address;
  std::uint8_t protocol = 6;          // IPPROTO_TCP or IPPROTO_UDP
  std::vector<std::uint16_t> ports;   // host byte order; empty = every port
  std::vector<std::string> nodes;     // the nodes serving it; empty = every node
  // Its service's check: health.kind when unset; over TCP to health_port
  // (default: each listed port itself; required for UDP and for every-port
  // entries, which have no port of their own to check); health_path for
  // http (default health.path).
  std::optional<HealthKind> health;
  std::uint16_t health_port = 0;
  std::optional<std::string> health_path;
};

struct PeerConfig {
  std::string name;
  Address address;
  std::uint32_t weight = 1;  // Maglev weight, 0 = drained (no new flows)
};

// Where a configuration value was set: a line of the config file, or a flag.
struct SourceLocation {
  std::string file;        // set for values from the file
  std::uint32_t line = 0;  // 1-based line in `file`
  std::string flag;        // set for values from a flag, e.g. "--peer"
  std::string key;         // the key as written when it differs from the
                           // canonical path ("vip[0].port" for ports[0])
};

struct Config {
  std::string source;  // the config file's path ("" when flags only)

  NodeSection node;
  DatapathSection datapath;
  NeighboursSection neighbours;
  ConntrackSection conntrack;
  SocketsSection sockets;
  HealthSection health;
  GossipSection gossip;
  MetricsSection metrics;

  std::vector<VipConfig> vips;
  // May include this node itself: its address and weight must agree. With
  // gossip enabled these are the seeds (address:gossip.port) and their
  // weights are not used (each node publishes its own node.weight).
  std::vector<PeerConfig> peers;

  // Key path ("node.name", "vip[1].ports[0]", "peer[2]"; indices from 0) to
  // where it was set. Tables and array entries are recorded too, so a missing
  // key is reported at its table's header. Empty for a Config built in code;
  // its errors then name only the key.
  std::map<std::string, SourceLocation, std::less<>> locations;
};

// Reads one entry of gossip.seeds ("HOST", "HOST:PORT", "10.0.0.5:7946",
// "[2001:db8::5]"); the port is `default_port` when the entry names none.
// The error says what is wrong with the text, without the key.
std::expected<GossipSeed, std::string> parse_gossip_seed(std::string_view text,
                                                         std::uint16_t default_port);

// Parses TOML text. `path` is used only in error messages.
Config parse_config(std::string_view text, std::string_view path);

// Reads and parses a file (ConfigError if it cannot be read).
Config load_config_file(const std::string& path);

// Builds the configuration from argv: --config FILE plus overriding flags.
// Throws ConfigError on a bad flag or value; returns nullopt after printing
// the --help or --version text to `out` (std::cout in the first form).
std::optional<Config> config_from_args(int argc, const char* const* argv);
std::optional<Config> config_from_args(int argc, const char* const* argv, std::ostream& out);

// Checks every value and the cross-field rules (unique names and addresses,
// ports, sizes) and fills defaults that depend on other fields. Called by the
// functions above.
void validate(Config& config);

// The --help text: the fixed part and one line per flag of the key table.
std::string usage_text();

// The version --version prints; it matches meson.build's project version.
std::string_view mixlb_version();

}  // namespace mixlb
