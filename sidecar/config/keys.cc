#include "config/keys.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>

#include "cluster/maglev.h"

namespace mixlb {
namespace {

// One accessor per field, as captureless lambdas (function pointers).
#define MIXLB_STRING(field) [](Config& c) -> std::string& { return c.field; }
#define MIXLB_INTEGER(field) [](Config& c) -> std::uint32_t& { return c.field; }
#define MIXLB_BOOLEAN(field) [](Config& c) -> bool& { return c.field; }
#define MIXLB_ADDRESS(field) [](Config& c) -> std::optional<Address>& { return c.field; }
#define MIXLB_STRINGS(field) [](Config& c) -> std::vector<std::string>& { return c.field; }

// Choices: the words a key takes and the enum each word stands for.
template <typename E, std::size_t N>
struct Words {
  std::array<std::pair<std::string_view, E>, N> words;
  std::optional<E> parse(std::string_view w) const {
    for (const auto& [word, value] : words)
      if (word == w) return value;
    return std::nullopt;
  }
  std::string_view name(E e) const {
    for (const auto& [word, value] : words)
      if (value == e) return word;
    return "?";
  }
};

constexpr Words<XdpMode, 3> kXdpModes{
    {{{"auto", XdpMode::kAuto}, {"native", XdpMode::kNative}, {"generic", XdpMode::kGeneric}}}};
constexpr Words<StopAction, 2> kStopActions{
    {{{"restart", StopAction::kRestart}, {"leave", StopAction::kLeave}}}};
constexpr Words<HealthKind, 3> kHealthKinds{
    {{{"tcp", HealthKind::kTcp}, {"http", HealthKind::kHttp}, {"none", HealthKind::kNone}}}};
constexpr Words<InvalidationMode, 5> kInvalidationModes{{{{"off", InvalidationMode::kOff},
                                                          {"gossip", InvalidationMode::kGossip},
                                                          {"multicast", InvalidationMode::kMulticast},
                                                          {"broadcast", InvalidationMode::kBroadcast},
                                                          {"targeted", InvalidationMode::kTargeted}}}};
constexpr Words<SocketPolicy, 2> kSocketPolicies{{{{"hash", SocketPolicy::kHash}, {"cpu", SocketPolicy::kCpu}}}};
constexpr Words<LogFormat, 2> kLogFormats{{{{"text", LogFormat::kText}, {"json", LogFormat::kJson}}}};

// Log levels are kept as their word (spdlog reads it).
constexpr std::string_view kLogLevels[] = {"trace", "debug", "info", "warn", "error"};

#define MIXLB_CHOICE(words, field)                             \
  .choose = [](Config& c, std::string_view w) {                \
    auto v = words.parse(w);                                   \
    if (v) c.field = *v;                                       \
    return v.has_value();                                      \
  },                                                           \
  .chosen = [](const Config& c) { return words.name(c.field); }

const KeySpec kKeys[] = {
    // [node]
    {.path = "node.name", .flag = "--name", .type = KeyType::kString, .default_text = "required",
     .allowed = "1..63 characters of `A-Z a-z 0-9 . _ -`",
     .help = "This node's name, unique in the cluster. Its node id (the value in the Maglev tables) "
             "is derived from it, so every node computes the same id without coordination.",
     .flag_value = "NAME", .string = MIXLB_STRING(node.name)},
    {.path = "node.interface", .flag = "--interface", .type = KeyType::kString,
     .default_text = "required",
     .allowed = "a Linux interface name: 1..15 bytes, not `.` or `..`, no `/`, `:` or whitespace",
     .help = "The uplink that VIP traffic arrives on; the XDP program attaches here.",
     .flag_value = "IFNAME", .string = MIXLB_STRING(node.interface)},
    {.path = "node.address", .flag = "--address", .type = KeyType::kAddress,
     .default_text = "the interface's first IPv4 address, found at start",
     .allowed = "an IPv4 or IPv6 unicast address (see [Addresses](#addresses))",
     .help = "This node's address in the cluster. Peers forward to it by looking up the route to "
             "this address, in its family. If this node also appears in `[[peer]]`, that entry "
             "must carry the same address.",
     .flag_value = "ADDR", .address = MIXLB_ADDRESS(node.address)},
    {.path = "node.weight", .flag = "--weight", .type = KeyType::kInteger,
     .default_text = "`1`, or the weight of this node's own `[[peer]]` entry", .allowed = "0..100",
     .help = "This node's Maglev weight (see [Weights and draining](#weights-and-draining)); 0 "
             "drains it. If this node's own `[[peer]]` entry gives a weight, the two must be "
             "equal.",
     .min = 0, .max = kMaxMaglevWeight, .flag_value = "N", .integer = MIXLB_INTEGER(node.weight)},
    {.path = "node.admin_socket", .flag = "--admin-socket", .type = KeyType::kString,
     .default_text = "`<run_dir>/<name>.sock`",
     .allowed = "non-empty, at most 107 bytes (a unix socket path)",
     .help = "The socket `mixlbctl` talks to.", .flag_value = "PATH",
     .string = MIXLB_STRING(node.admin_socket)},
    {.path = "node.run_dir", .flag = "--run-dir", .type = KeyType::kString,
     .default_text = "`/run/mixlb`", .allowed = "an absolute path",
     .help = "Where the sidecar keeps its instance lock (`<name>.lock`: a second sidecar of the "
             "node is refused, naming the first one's pid) and its host record "
             "(`<name>.host.json`: what mixlb changed on the host, so a restarted sidecar knows "
             "what is its own and `mixlb cleanup` can put it back). Created 0700 if missing. In "
             "a container, make it a volume, so the lock and the record outlive the container.",
     .flag_value = "DIR", .string = MIXLB_STRING(node.run_dir)},
    {.path = "node.bpffs_dir", .flag = "--bpffs-dir", .type = KeyType::kString,
     .default_text = "`/sys/fs/bpf/mixlb`", .allowed = "an absolute path",
     .help = "Maps and links are pinned under `<bpffs_dir>/<name>/`, so a restarted sidecar "
             "adopts the running data path and its connection table. Below `/sys/fs/bpf` the "
             "sidecar mounts a bpffs there when none is mounted; anywhere else the directory "
             "must already be on a bpffs.",
     .flag_value = "DIR", .string = MIXLB_STRING(node.bpffs_dir)},
    {.path = "node.log_level", .flag = "--log-level", .type = KeyType::kChoice,
     .default_text = "`info`", .allowed = "`trace`, `debug`, `info`, `warn`, `error`",
     .help = "How much the sidecar logs. Routine events (periodic state syncs, neighbour "
             "refreshes) are at `debug`.",
     .choices = "trace, debug, info, warn or error", .flag_value = "LEVEL",
     .choose = [](Config& c, std::string_view w) {
       const bool ok = std::find(std::begin(kLogLevels), std::end(kLogLevels), w) != std::end(kLogLevels);
       if (ok) c.node.log_level = std::string(w);
       return ok;
     },
     .chosen = [](const Config& c) { return std::string_view(c.node.log_level); }},
    {.path = "node.log_format", .flag = "--log-format", .type = KeyType::kChoice,
     .default_text = "`text`", .allowed = "`text`, `json`",
     .help = "`text`: lines for people; `json`: one JSON object per line (`time`, `level`, "
             "`node`, `message`), for log shippers.",
     .choices = "text or json", .flag_value = "FORMAT", MIXLB_CHOICE(kLogFormats, node.log_format)},
    {.path = "node.on_stop", .flag = "--on-stop", .type = KeyType::kChoice,
     .default_text = "`restart`", .allowed = "`restart`, `leave`",
     .help = "What SIGTERM and SIGINT mean. `restart`: stop for a restart or an upgrade — the "
             "data path, VIPs and host settings stay, peers send no new flows until the next "
             "sidecar is back, nobody's connections break. `leave`: what `mixlbctl leave` does — "
             "leave the cluster and remove everything. See [Stopping, restarting, "
             "leaving](operations.md#stopping-restarting-leaving).",
     .choices = "restart or leave", .flag_value = "ACTION", MIXLB_CHOICE(kStopActions, node.on_stop)},
    {.path = "node.leave_timeout_ms", .flag = "--leave-timeout-ms", .type = KeyType::kInteger,
     .default_text = "`30000`", .allowed = "0..3600000, at most `gossip.flow_grace_ms` when gossip is on",
     .help = "How long a leave keeps serving established connections at most before it removes "
             "the data path. A leave ends sooner when the node is quiet: no app connection on a "
             "VIP and no VIP packet for 2 s.",
     .min = 0, .max = 3600000, .flag_value = "N", .integer = MIXLB_INTEGER(node.leave_timeout_ms)},

    // [datapath]
    {.path = "datapath.xdp_mode", .flag = "--xdp-mode", .type = KeyType::kChoice,
     .default_text = "`auto`", .allowed = "`auto`, `native`, `generic`",
     .help = "How the XDP program attaches. `auto` tries native (driver) mode and falls back to "
             "generic (skb) mode with a warning; the mode in use is shown in status. `native` and "
             "`generic` fail rather than fall back.",
     .choices = "auto, native or generic", .flag_value = "MODE",
     MIXLB_CHOICE(kXdpModes, datapath.xdp_mode)},
    {.path = "datapath.maglev_table_size", .flag = "--maglev-table-size", .type = KeyType::kInteger,
     .default_text = "`65537`", .allowed = "a prime in 3..1000003, larger than the number of nodes",
     .help = "Slots in each VIP's Maglev lookup table. More slots give shares closer to equal; the "
             "table must be a prime for Maglev's permutations to cover every slot.",
     .min = 3, .max = 1000003, .flag_value = "N", .integer = MIXLB_INTEGER(datapath.maglev_table_size)},
    {.path = "datapath.conntrack_entries", .flag = "--conntrack-entries", .type = KeyType::kInteger,
     .default_text = "`65536`", .allowed = "1024..67108864",
     .help = "Capacity of the connection table (5-tuple → node).", .min = 1024, .max = 67108864,
     .flag_value = "N", .integer = MIXLB_INTEGER(datapath.conntrack_entries)},
    {.path = "datapath.half_open_entries", .type = KeyType::kInteger,
     .default_text = "`0`: a quarter of `conntrack_entries`, at least 1024",
     .allowed = "0, or 1024..67108864",
     .help = "Slots of the half-open table: the decisions of flows that have sent one "
             "packet (a TCP SYN, a UDP flow's first datagram), one slot per flow hash, "
             "rounded up to a power of two. A flow enters the connection table with its "
             "second packet, so a SYN flood or a port scan churns only this table and cannot "
             "evict established flows. A new flow whose slot a newer one took gets the "
             "Maglev answer for its second packet.",
     .min = 0, .max = 67108864, .integer = MIXLB_INTEGER(datapath.half_open_entries)},
    {.path = "datapath.max_vips", .type = KeyType::kInteger, .default_text = "`16`",
     .allowed = "1..4096, at least the number of VIP entries",
     .help = "VIP entries the data path can hold; each address and port is one entry, and so is "
             "an address with all ports. With gossip a node can serve at most 120 VIP entries, "
             "the most its gossip metadata holds; a node configured to serve more does not start. "
             "The Maglev map holds `max_vips * 2 * maglev_table_size` node ids (every table is "
             "double-buffered), which must fit in 32 bits.",
     .min = 1, .max = 4096, .integer = MIXLB_INTEGER(datapath.max_vips)},
    {.path = "datapath.max_nodes", .type = KeyType::kInteger, .default_text = "`1024`",
     .allowed = "2..65536, at least the number of nodes (this one and its peers)",
     .help = "Cluster members the data path can hold.", .min = 2, .max = 65536,
     .integer = MIXLB_INTEGER(datapath.max_nodes)},

    // [neighbours]
    {.path = "neighbours.refresh_ms", .type = KeyType::kInteger, .default_text = "`1000`",
     .allowed = "100..60000",
     .help = "How often, in milliseconds, the neighbour (ARP) entries of the peers are read back "
             "and kicked, so forwarding never meets an unresolved neighbour.",
     .min = 100, .max = 60000, .integer = MIXLB_INTEGER(neighbours.refresh_ms)},

    // [conntrack]
    {.path = "conntrack.sweep_interval_ms", .type = KeyType::kInteger, .default_text = "`10000`",
     .allowed = "0 (no sweeping), or 100..3600000",
     .help = "How often the sweeper walks the connection table and removes the entries idle "
             "longer than the timeouts below: the flows whose end nothing else saw (a UDP flow "
             "has no end; a TCP close that close tracking or invalidation missed). The walk "
             "runs on a thread of its own; `./dev bench conntrack` prints its cost on a full "
             "table.",
     .min = 0, .max = 3600000, .integer = MIXLB_INTEGER(conntrack.sweep_interval_ms)},
    {.path = "conntrack.close_batch_ms", .type = KeyType::kInteger, .default_text = "`10`",
     .allowed = "0..100",
     .help = "Closes are gathered for this long after the first one wakes the sidecar, then "
             "handed on together: one wake-up, and one invalidation datagram per destination, for "
             "all the closes of the window instead of one each. It adds up to this much to the "
             "invalidation latency; 0 hands each wake-up's closes on at once (at thousands of "
             "closes a second that costs the sidecar several times the CPU, see "
             "docs/benchmarks.md).",
     .min = 0, .max = 100, .integer = MIXLB_INTEGER(conntrack.close_batch_ms)},
    {.path = "conntrack.udp_idle_ms", .type = KeyType::kInteger, .default_text = "`120000`",
     .allowed = "0 (never), or 1000..86400000",
     .help = "A UDP flow without a packet for this long loses its entry: its next datagram is "
             "balanced afresh, so a reused 5-tuple does not follow its entry to a node that has "
             "since been drained, failed or left.",
     .min = 0, .max = 86400000, .integer = MIXLB_INTEGER(conntrack.udp_idle_ms)},
    {.path = "conntrack.tcp_closing_idle_ms", .type = KeyType::kInteger, .default_text = "`30000`",
     .allowed = "0 (never), or 1000..86400000",
     .help = "A TCP flow whose client sent FIN or RST, without a packet for this long, loses its "
             "entry.",
     .min = 0, .max = 86400000, .integer = MIXLB_INTEGER(conntrack.tcp_closing_idle_ms)},
    {.path = "conntrack.tcp_idle_ms", .type = KeyType::kInteger, .default_text = "`3600000`",
     .allowed = "0 (never), or 1000..86400000",
     .help = "Any other TCP flow without a packet for this long loses its entry. Keep it above "
             "the longest silence of the connections you serve (keepalives count): a connection "
             "idle past it keeps working while the members stay the same, but after a change its "
             "next packet may be balanced to another node, which resets it.",
     .min = 0, .max = 86400000, .integer = MIXLB_INTEGER(conntrack.tcp_idle_ms)},
    {.path = "conntrack.invalidation", .flag = "--invalidation", .type = KeyType::kChoice,
     .default_text = "`targeted`", .allowed = "`targeted`, `multicast`, `broadcast`, `gossip`, `off`",
     .help = "How the other nodes learn that a connection served here closed, so they delete its "
             "entry: the same on every node. `targeted`: a datagram to the one peer that "
             "forwarded the flow (its data path saw the peer's MAC), to every peer when that is "
             "not known. `multicast`: a datagram per batch to `invalidation_group`. `broadcast`: "
             "a datagram per batch to the segment's broadcast address (IPv4). `gossip`: user "
             "events through the gossip channel, with no port of its own, spread from node to "
             "node, so every node sends each batch several times (needs gossip). `off`: the "
             "other nodes' entries wait "
             "for the sweeper. The datagrams are sealed with the keyring. See [Connection "
             "life cycle](operations.md#connection-life-cycle).",
     .choices = "targeted, multicast, broadcast, gossip or off", .flag_value = "MODE",
     MIXLB_CHOICE(kInvalidationModes, conntrack.invalidation)},
    {.path = "conntrack.invalidation_port", .type = KeyType::kInteger, .default_text = "`9066`",
     .allowed = "1..65535, the same on every node",
     .help = "The UDP port of the `targeted`, `multicast` and `broadcast` modes, on every node.",
     .min = 1, .max = 65535, .integer = MIXLB_INTEGER(conntrack.invalidation_port)},
    {.path = "conntrack.invalidation_group", .type = KeyType::kAddress,
     .default_text = "`224.0.0.88`", .allowed = "an IPv4 multicast address",
     .help = "The multicast group of the `multicast` mode. Every node joins it on its interface; "
             "the datagrams go out with a TTL of 1, so they stay on the segment.",
     .address = MIXLB_ADDRESS(conntrack.invalidation_group)},
    {.path = "conntrack.invalidation_max_age_ms", .type = KeyType::kInteger, .default_text = "`30000`",
     .allowed = "1000..600000",
     .help = "An invalidation sent longer ago than this by the sender's clock (or that far in "
             "the future) is refused as a possible replay; the nodes' clocks must agree better "
             "than this. Replays within it are refused by each sender's sequence numbers.",
     .min = 1000, .max = 600000, .integer = MIXLB_INTEGER(conntrack.invalidation_max_age_ms)},

    // [sockets]
    {.path = "sockets.enabled", .type = KeyType::kBoolean, .default_text = "`true`",
     .allowed = "`true`, `false`",
     .help = "Load the reuseport selector, so the app's sockets on VIP ports can be handed to "
             "the sidecar (`mixlbctl sockets adopt`, or the handoff socket "
             "`<run_dir>/<name>.handoff` that `mixlb-run` uses) and the app restarted without "
             "refusing or resetting a connection. `false`: the kernel's own SO_REUSEPORT hash, "
             "and `sockets` requests are refused.",
     .boolean = MIXLB_BOOLEAN(sockets.enabled)},
    {.path = "sockets.policy", .type = KeyType::kChoice, .default_text = "`hash`",
     .allowed = "`hash`, `cpu`",
     .help = "Which socket of the active generation gets a new flow. `hash`: the flow's hash "
             "over a consistent table of the generation's sockets (a worker that comes or goes "
             "moves only its own share). `cpu`: the socket whose `SO_INCOMING_CPU` is the CPU "
             "that received the packet, else the sockets in turn by CPU number.",
     .choices = "hash or cpu", MIXLB_CHOICE(kSocketPolicies, sockets.policy)},
    {.path = "sockets.udp_idle_ms", .type = KeyType::kInteger, .default_text = "`30000`",
     .allowed = "1000..3600000",
     .help = "A UDP flow stays on the socket that received its first datagram, whatever "
             "generation is active since, until it has been idle this long; then it is placed "
             "afresh. Longer than the app's own idle timeout, so a flow never reaches a process "
             "that does not know it.",
     .min = 1000, .max = 3600000, .integer = MIXLB_INTEGER(sockets.udp_idle_ms)},
    {.path = "sockets.udp_flows", .type = KeyType::kInteger, .default_text = "`65536`",
     .allowed = "1024..4194304",
     .help = "Entries of the UDP flow table (an LRU): the UDP flows whose socket is remembered. "
             "A flow pushed out is placed afresh by its next datagram.",
     .min = 1024, .max = 4194304, .integer = MIXLB_INTEGER(sockets.udp_flows)},

    // [health]
    {.path = "health.kind", .type = KeyType::kChoice, .default_text = "`tcp`",
     .allowed = "`tcp`, `http`, `none`",
     .help = "How a service is checked unless its `[[vip]]` entry says otherwise. `tcp`: a "
             "connection must open; `http`: `GET path` must answer a 2xx or 3xx status line; "
             "`none`: no check, the service counts as healthy.",
     .choices = "tcp, http or none", MIXLB_CHOICE(kHealthKinds, health.kind)},
    {.path = "health.path", .type = KeyType::kString, .default_text = "`/`",
     .allowed = "an absolute HTTP path",
     .help = "The path `http` checks get unless a `[[vip]]` entry gives its own.",
     .string = MIXLB_STRING(health.path)},
    {.path = "health.interval_ms", .type = KeyType::kInteger, .default_text = "`1000`",
     .allowed = "50..600000", .help = "One probe per interval.", .min = 50, .max = 600000,
     .integer = MIXLB_INTEGER(health.interval_ms)},
    {.path = "health.timeout_ms", .type = KeyType::kInteger, .default_text = "`500`",
     .allowed = "10..600000, below `interval_ms`",
     .help = "A probe without an answer by then fails.", .min = 10, .max = 600000,
     .integer = MIXLB_INTEGER(health.timeout_ms)},
    {.path = "health.rise", .type = KeyType::kInteger, .default_text = "`2`", .allowed = "1..100",
     .help = "Successes in a row to become healthy.", .min = 1, .max = 100,
     .integer = MIXLB_INTEGER(health.rise)},
    {.path = "health.fall", .type = KeyType::kInteger, .default_text = "`3`", .allowed = "1..100",
     .help = "Failures in a row to become unhealthy.", .min = 1, .max = 100,
     .integer = MIXLB_INTEGER(health.fall)},

    // [gossip]
    {.path = "gossip.enabled", .flag = "--no-gossip", .type = KeyType::kBoolean,
     .default_text = "`true`", .allowed = "`true`, `false`",
     .help = "Gossip membership, or (`false`) static membership from `[[peer]]`. The flag "
             "`--no-gossip` sets it to `false`.",
     .flag_sets = false, .boolean = MIXLB_BOOLEAN(gossip.enabled)},
    {.path = "gossip.port", .flag = "--gossip-port", .type = KeyType::kInteger,
     .default_text = "`7946`", .allowed = "1..65535",
     .help = "The UDP port (probes and gossip) and TCP port (state sync) gossip uses. It must be "
             "the same on every node: the seeds are reached at it.",
     .min = 1, .max = 65535, .flag_value = "N", .integer = MIXLB_INTEGER(gossip.port)},
    {.path = "gossip.bind", .type = KeyType::kAddress, .default_text = "`node.address`",
     .allowed = "an IPv4 or IPv6 unicast address (see [Addresses](#addresses)), or the "
                "unspecified `0.0.0.0` / `::`; in the family of `node.address`",
     .help = "The local address the gossip sockets bind to. The unspecified address binds every "
             "local address of its family, which is useful when `node.address` is found at "
             "start-up or may move between interfaces. The other nodes reach this one at its "
             "`node.address` and `port` (that is where their seed lists point), so a specific "
             "`bind` other than `node.address` only works if that traffic arrives there.",
     .address = MIXLB_ADDRESS(gossip.bind)},
    {.path = "gossip.cluster", .flag = "--cluster", .type = KeyType::kString,
     .default_text = "`mixlb`", .allowed = "1..64 characters of `A-Z a-z 0-9 . _ -`",
     .help = "The cluster's name, the same on every node. Every packet is authenticated with it "
             "(it is the AEAD's associated data), so nodes of two clusters that share a keyring "
             "never merge, and a packet of one cannot be replayed into the other.",
     .flag_value = "NAME", .string = MIXLB_STRING(gossip.cluster)},
    {.path = "gossip.keyring", .flag = "--keyring", .type = KeyType::kString,
     .default_text = "none", .allowed = "a non-empty path, absolute or relative to the working directory",
     .help = "The [keyring file](#the-keyring-file). The sidecar reads it at start-up and rewrites "
             "it (atomically) when `mixlbctl keys` changes the keys, so a restart keeps them.",
     .flag_value = "FILE", .string = MIXLB_STRING(gossip.keyring)},
    {.path = "gossip.insecure", .type = KeyType::kBoolean, .default_text = "`false`",
     .allowed = "`true`, `false`",
     .help = "Gossip without a keyring travels unencrypted and unauthenticated: anyone who can "
             "send to the gossip port can change the membership. It is refused unless this is "
             "`true`, and even then warned about at every start. For closed labs only.",
     .boolean = MIXLB_BOOLEAN(gossip.insecure)},
    {.path = "gossip.probe_interval_ms", .type = KeyType::kInteger, .default_text = "`1000`",
     .allowed = "50..60000", .help = "Failure detection: one member is probed per interval.",
     .min = 50, .max = 60000, .integer = MIXLB_INTEGER(gossip.probe_interval_ms)},
    {.path = "gossip.probe_timeout_ms", .type = KeyType::kInteger, .default_text = "`500`",
     .allowed = "10..60000, shorter than `probe_interval_ms`",
     .help = "How long a direct probe waits for its ack before other members are asked to probe "
             "the target.",
     .min = 10, .max = 60000, .integer = MIXLB_INTEGER(gossip.probe_timeout_ms)},
    {.path = "gossip.interval_ms", .type = KeyType::kInteger, .default_text = "`200`",
     .allowed = "10..60000",
     .help = "Every interval, pending updates are gossiped to a few random members.", .min = 10,
     .max = 60000, .integer = MIXLB_INTEGER(gossip.interval_ms)},
    {.path = "gossip.suspicion_mult", .type = KeyType::kInteger, .default_text = "`3`",
     .allowed = "1..20",
     .help = "A suspected member is declared dead after at least `suspicion_mult` × max(1, "
             "log10(members)) probe intervals (longer when few others confirm the suspicion). "
             "Higher: fewer false deaths on a lossy network, slower detection.",
     .min = 1, .max = 20, .integer = MIXLB_INTEGER(gossip.suspicion_mult)},
    {.path = "gossip.push_pull_interval_ms", .type = KeyType::kInteger, .default_text = "`30000`",
     .allowed = "1000..3600000",
     .help = "Full state sync with one random member every interval, scaled up with the cluster "
             "from 32 members on (× members / 32).",
     .min = 1000, .max = 3600000, .integer = MIXLB_INTEGER(gossip.push_pull_interval_ms)},
    {.path = "gossip.rejoin_interval_ms", .type = KeyType::kInteger, .default_text = "`30000`",
     .allowed = "1000..3600000",
     .help = "Seeds that are not members are joined again this often, so the two sides of a "
             "healed partition find each other.",
     .min = 1000, .max = 3600000, .integer = MIXLB_INTEGER(gossip.rejoin_interval_ms)},
    {.path = "gossip.seeds", .flag = "--seed", .type = KeyType::kStrings, .default_text = "`[]`",
     .allowed = "`HOST`, `HOST:PORT`, an IPv4 address (`:PORT` optional), an IPv6 address in "
                "brackets (`[2001:db8::5]`, `:PORT` optional); the port defaults to `port`",
     .help = "More seeds to join through, beside the other `[[peer]]` entries. A host name is "
             "resolved by the system resolver (DNS, /etc/hosts) at the start and again at every "
             "re-join round (`rejoin_interval_ms`), so a name whose addresses follow the nodes "
             "(a headless Kubernetes service, a DNS record kept by the platform) stays a good "
             "seed; every address it resolves to in the gossip family is a seed, this node's own "
             "is skipped. A name that stops resolving keeps its last addresses. The first tables "
             "wait for the first resolution. Each `--seed` flag adds one, and the flags replace "
             "the file's list.",
     .flag_value = "HOST[:PORT]", .strings = MIXLB_STRINGS(gossip.seeds)},
    {.path = "gossip.flow_grace_ms", .type = KeyType::kInteger, .default_text = "`60000`",
     .allowed = "0..3600000",
     .help = "How long this node keeps forwarding the established flows of a member that died "
             "or left. Such a member gets no new flows at once, but its data path may well still "
             "serve the old ones (a crashed sidecar leaves its XDP program and its app running), "
             "and a sidecar restarted within this time finds every flow where it was. After it, "
             "the member leaves the node map and its connections are forgotten: their next packet "
             "is balanced afresh (a TCP connection then gets a reset from its new node). 0 "
             "forgets them at once.",
     .min = 0, .max = 3600000, .integer = MIXLB_INTEGER(gossip.flow_grace_ms)},

    // [metrics]
    {.path = "metrics.listen", .flag = "--metrics", .type = KeyType::kString,
     .default_text = "`127.0.0.1:9650`", .allowed = "`ADDRESS:PORT` (IPv6 in brackets), or `off`",
     .help = "Where the Prometheus endpoint (`/metrics`) listens; `off` turns it off. Keep it on "
             "a local or management address: it needs no credentials.",
     .flag_value = "ADDR:PORT", .string = MIXLB_STRING(metrics.listen)},
};

#undef MIXLB_STRING
#undef MIXLB_INTEGER
#undef MIXLB_BOOLEAN
#undef MIXLB_ADDRESS
#undef MIXLB_CHOICE

constexpr std::string_view kSections[] = {"node",   "datapath", "neighbours", "conntrack", "sockets",
                                          "health", "gossip",   "metrics"};

const EntryKey kVipKeys[] = {
    {"address", "string", "required", "an IPv4 or IPv6 unicast address (see [Addresses](#addresses))",
     "The virtual IP. The sidecar puts it on `lo` (`/32` or `/128`). A VIP of either family may be "
     "served by nodes of either family."},
    {"protocol", "string", "`tcp`", "`tcp`, `udp`",
     "The transport protocol. TCP flows are pinned to their node by their first packet (the SYN, or "
     "the first one this node sees); UDP flows by their first datagram."},
    {"port", "integer", "—", "1..65535", "One port."},
    {"ports", "array of integers", "—", "non-empty, each 1..65535",
     "Several ports. Give at most one of `port` and `ports`; give neither for every port."},
    {"nodes", "array of strings", "every node",
     "non-empty; each this node's name or a `[[peer]]` name, each once",
     "The nodes serving this VIP. Every node still receives the VIP's traffic from the router and "
     "balances it over these; a node outside the list serves none of it itself. With gossip "
     "disabled, the Maglev table is built from the listed nodes with their weights. With gossip, "
     "the list decides only whether this node publishes the VIP's ports as served by it; the table "
     "is built from the members that publish them (and whose app is healthy), so ship the same "
     "list to every node."},
    {"health", "string", "`health.kind`", "`tcp`, `http`, `none`",
     "How this entry's service is checked. Each entry's ports are checked on their own, so a "
     "failing service takes the node out of its ports only."},
    {"health_port", "integer", "each listed port itself", "1..65535",
     "The TCP port its check connects to; required to check a UDP entry or one that takes "
     "every port (without it they are not checked and count as healthy)."},
    {"health_path", "string", "`health.path`", "an absolute HTTP path", "The path an `http` check gets."},
};

const EntryKey kPeerKeys[] = {
    {"name", "string", "required", "as `node.name`", "The member's name."},
    {"address", "string", "required", "an IPv4 or IPv6 unicast address (see [Addresses](#addresses))",
     "The member's address; forwarding to it looks up the route to this address."},
    {"weight", "integer", "`1`", "0..100",
     "The member's Maglev weight (see [Weights and draining](#weights-and-draining)), with gossip "
     "disabled only: with gossip, each node publishes its own `node.weight` and the peers' weights "
     "are not used (they are still checked)."},
};

std::string_view type_name(KeyType type) {
  switch (type) {
    case KeyType::kString:
    case KeyType::kChoice:
      return "string";
    case KeyType::kInteger:
      return "integer";
    case KeyType::kBoolean:
      return "boolean";
    case KeyType::kAddress:
      return "address (string)";
    case KeyType::kStrings:
      return "array of strings";
  }
  return "?";
}

// A table cell: `|` would end the cell.
std::string cell(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '|') out += "\\|";
    else out += c;
  }
  return out;
}

}  // namespace

std::span<const KeySpec> config_keys() { return kKeys; }

std::string_view to_string(StopAction action) { return kStopActions.name(action); }
std::string_view to_string(HealthKind kind) { return kHealthKinds.name(kind); }
std::string_view to_string(InvalidationMode mode) { return kInvalidationModes.name(mode); }
std::string_view to_string(LogFormat format) { return kLogFormats.name(format); }

std::span<const std::string_view> config_sections() { return kSections; }

const KeySpec* find_key(std::string_view path) {
  for (const KeySpec& k : kKeys)
    if (k.path == path) return &k;
  return nullptr;
}

const KeySpec* find_flag(std::string_view flag) {
  for (const KeySpec& k : kKeys)
    if (!k.flag.empty() && k.flag == flag) return &k;
  return nullptr;
}

std::string section_key_names(std::string_view section) {
  std::string out;
  for (const KeySpec& k : kKeys) {
    if (k.section() != section) continue;
    if (!out.empty()) out += ", ";
    out += k.name();
  }
  return out;
}

std::span<const EntryKey> entry_keys(std::string_view list) {
  if (list == "vip") return kVipKeys;
  if (list == "peer") return kPeerKeys;
  return {};
}

std::string entry_key_names(std::string_view list) {
  std::string out;
  for (const EntryKey& k : entry_keys(list)) {
    if (!out.empty()) out += ", ";
    out += k.name;
  }
  return out;
}

// The flags table: the configuration file, one row per key with a flag,
// the list flags and the two that only print.
std::string flag_reference() {
  std::string out = "| flag | sets |\n| --- | --- |\n| `-c`, `--config FILE` | the configuration file |\n";
  for (const KeySpec& k : kKeys) {
    if (k.flag.empty()) continue;
    if (k.type == KeyType::kBoolean) {
      out += fmt::format("| `{}` | `{} = {}` (takes no value) |\n", k.flag, k.path,
                         k.flag_sets ? "true" : "false");
    } else {
      out += fmt::format("| `{} {}` | `{}` |\n", k.flag, k.flag_value, k.path);
    }
  }
  out +=
      "| `--peer NAME=ADDR[@WEIGHT]` | one `[[peer]]`, with its weight when `@WEIGHT` is given "
      "(`mix2=10.0.0.12@2`, `mix3=fd00::13@0`); repeat it. All `--peer` flags together replace "
      "the file's peer list (with gossip: the seed list). |\n"
      "| `--vip ADDR:PORT[/PROTO]` | one `[[vip]]` with one port, or with every port for "
      "`ADDR:*`; `/tcp` (the default) or `/udp` after it. An IPv6 address goes in brackets: "
      "`[fd00::1]:443/tcp`, `[fd00::1]:*/udp`. Repeat it; all `--vip` flags together replace "
      "the file's VIPs (a flag cannot give `nodes`: such a VIP is served by every node). |\n"
      "| `-h`, `--help` | print the usage and exit |\n"
      "| `--version` | print the version and exit |\n";
  return out;
}

std::string key_reference(std::string_view name) {
  if (name == "flags") return flag_reference();
  std::string out = "| key | type | default | allowed | meaning |\n| --- | --- | --- | --- | --- |\n";
  for (const KeySpec& k : kKeys) {
    if (k.section() != name) continue;
    std::string meaning(k.help);
    if (!k.flag.empty()) meaning += fmt::format(" Flag: `{}`.", k.flag);
    out += fmt::format("| `{}` | {} | {} | {} | {} |\n", k.name(), type_name(k.type),
                       cell(k.default_text), cell(k.allowed), cell(meaning));
  }
  for (const EntryKey& k : entry_keys(name))
    out += fmt::format("| `{}` | {} | {} | {} | {} |\n", k.name, k.type, cell(k.default_text),
                       cell(k.allowed), cell(k.help));
  return out;
}

}  // namespace mixlb
