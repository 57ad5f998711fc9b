#pragma once
// What each admin command answers, as types. The daemon builds them
// (status.cc, daemon.cc) and mixlbctl's renderers (render.h) take them, so
// one definition says what a command answers and the two sides cannot
// drift. to_json/from_json, found by nlohmann through ADL, give the wire
// form; its field names are what scripts read (`mixlbctl status --json`,
// integration/lib.sh), so a field is added, never renamed.
//
// from_json is lenient the way a client of an older daemon needs: a missing
// field keeps its default and an optional one stays empty (the renderers
// show "-"). A field of the wrong type throws nlohmann::json::type_error,
// which render_result (commands.h) turns into "unexpected <command> result".
//
// Optional fields are the ones the daemon leaves out in some states (a VIP
// without tables has no counters; a member whose metadata did not decode
// publishes no address), so an absent value and a zero stay distinct.
#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace mixlb {

using Counts = std::map<std::string, std::uint64_t>;

// --- stats, status -----------------------------------------------------------

struct NamedCounters {
  Counts events;  // connection-table events and the like, by name
  Counts drops;   // by drop reason
  Counts fib;     // bpf_fib_lookup results, the non-zero ones
};

// A VIP's own counters on this node.
struct VipPackets {
  std::uint64_t local_pkts = 0, local_bytes = 0;          // served by this node
  std::uint64_t fwd_pkts = 0, fwd_bytes = 0;              // forwarded to a peer
  std::uint64_t from_peer_pkts = 0, from_peer_bytes = 0;  // balanced by a peer, delivered here
  Counts drops;                                           // by drop reason
};

// One (VIP, node) pair: what this node served itself (self) or sent there.
struct NodePackets {
  std::string name;
  bool self = false;
  std::uint64_t pkts = 0, bytes = 0;
};

struct VipStats {
  std::string vip;                    // its label, "10.100.0.1:80/tcp"
  std::vector<std::string> backends;  // the members its live table was built from
  // The members serving it with their weight (0: drained).
  std::optional<std::map<std::string, std::uint32_t>> weights;
  // Set once the VIP has an id in the maps, that is once its table is out.
  std::optional<std::uint32_t> vip_id;
  std::optional<VipPackets> counters;
  std::optional<std::vector<NodePackets>> per_node;
};

// `stats`.
struct StatsResult {
  std::string node;
  std::uint32_t node_id = 0;
  NamedCounters counters;
  std::vector<VipStats> vips;
  // conntrack.invalidation, and the close-to-delete latency of the last
  // invalidations applied here ("p50_us", "p99_us", "samples"); empty
  // before any.
  std::string invalidation;
  Counts invalidation_latency;
  // How received invalidations are deleted: "kernel" (a batch per run of
  // the syscall program) or "per_flow" (a syscall each, where that program
  // did not load); empty without invalidation.
  std::string invalidation_apply;
};

struct NodeRow {
  std::string name;
  std::uint32_t id = 0;
  std::string address;
  std::uint32_t weight = 0;
  std::string mac;  // "-" until resolved
  bool self = false;
  bool departed = false;  // dead or left, kept for its flows
  std::string neighbour;  // the neighbour entry's state; "self" for this node
  bool managed_neighbour = false;
};

struct InstanceInfo {
  std::int64_t pid = 0;
  std::string lock;
  std::string host_record;
  bool adopted_maps = false;  // the maps of an earlier sidecar were kept
  bool adopted_link = false;
  std::string on_stop;  // "restart" or "leave"
};

// One check and the services (VIP ports) whose health it decides.
struct ServiceCheckInfo {
  std::string target;  // "tcp 10.100.0.1:80", "http 10.100.0.1:8080/healthz"
  std::vector<std::string> services;
  bool healthy = false;
  std::string last;  // the last probe's result
};

struct AppCheckInfo {
  std::string kind = "none";  // health.kind: "tcp", "http", or "none" when nothing is checked
  std::string target;         // "N check(s)"
  bool healthy = false;       // every check passes
  std::string last;           // "ok", or the first failing check's target and reason
  std::vector<ServiceCheckInfo> checks;
};

struct GossipInfo {
  bool enabled = false;  // the rest is set only with gossip
  std::string address;
  std::string cluster;
  bool encrypted = false;
  bool joined = false;
  std::uint64_t members_alive = 0;
  bool drained = false;
  std::uint32_t flow_grace_ms = 0;
  std::uint64_t table_rebuilds = 0;
  std::uint64_t user_events = 0;
  std::string last_sync_error;  // empty when the last rebuild succeeded
};

struct ConntrackCounts {
  std::uint64_t hit = 0, miss = 0, insert = 0, insert_fail = 0;
};

// `status`: everything of `stats`, and the node's state.
struct StatusResult : StatsResult {
  std::string interface;
  int ifindex = 0;
  std::string xdp_mode;  // "native", "generic" or "detached"
  std::string uplink;    // "attached", "detached" or "missing"
  std::string address;
  std::string mac;
  std::uint32_t maglev_table_size = 0;
  std::optional<std::string> metrics;  // the /metrics address ("127.0.0.1:9650"), or "off"
  std::string phase;                   // "serving" or "leaving"
  std::optional<std::string> leave;  // while leaving: what the leave waits for
  std::optional<InstanceInfo> instance;
  std::optional<AppCheckInfo> health;
  std::optional<GossipInfo> gossip;
  std::vector<NodeRow> nodes;
  std::optional<ConntrackCounts> conntrack;
};

// --- members -----------------------------------------------------------------

inline constexpr std::string_view kMemberStates[] = {"alive", "suspect", "dead", "left"};

struct MemberRow {
  std::string name;
  bool self = false;
  std::string state;  // one of kMemberStates
  std::uint32_t incarnation = 0;
  std::string gossip_address;
  bool in_tables = false;
  double since_s = 0;  // since its last state change
  // Dead or left, in its flow grace: its established flows still go there.
  bool departed = false;
  std::optional<double> flows_kept_s;
  // What it publishes, once its metadata decoded.
  std::optional<std::string> address;
  std::optional<std::string> mac;
  std::optional<std::uint32_t> weight;
  std::optional<bool> app_healthy;
  std::optional<bool> restarting;
  std::optional<std::vector<std::string>> vips;
  std::optional<std::string> problem;  // why an alive member is left out of the tables
};

struct GossipCounters {
  int health_score = 0;
  std::uint64_t probes = 0, probes_failed = 0, suspicions_raised = 0, deaths_declared = 0;
  std::uint64_t refutations = 0, bytes_sent = 0, bytes_received = 0, drops = 0;
  std::uint64_t events_dropped = 0;  // user events: the queue was full
  std::string last_drop;
  std::string last_error;
};

// `members`.
struct MembersResult {
  std::string node;
  std::string cluster;
  std::string gossip_address;
  std::vector<MemberRow> members;
  // The states asked for (`members --status`); unset: every member.
  std::optional<std::vector<std::string>> states;
  // This node's gossip counters, or why the gossip thread gave none.
  std::optional<GossipCounters> gossip;
  std::string gossip_error;
};

// Keeps the members whose state is one of `states` and records the filter.
void keep_member_states(MembersResult& result, std::vector<std::string> states);

// --- drain, leave, reload, which ----------------------------------------------

// `drain` and `undrain`.
struct DrainResult {
  std::string node;
  bool drained = false;
  std::uint32_t weight = 0;  // what this node publishes now
};

// `leave`: a leave begun (timeout_ms), or one already under way (state).
struct LeaveResult {
  std::string node;
  bool leaving = true;
  std::optional<std::uint32_t> timeout_ms;
  std::optional<std::string> state;
};

// `reload`.
struct ReloadResult {
  std::string file;
  bool changed = false;
  std::vector<std::string> applied;        // key paths applied while running
  std::vector<std::string> needs_restart;  // key paths that keep their running value
};

struct WhichFlow {
  std::string proto;
  std::string src;
  std::uint32_t sport = 0;
  std::string dst;
  std::uint32_t dport = 0;
};

// `which`.
struct WhichResult {
  WhichFlow flow;
  std::optional<std::string> vip;   // the matched VIP's label; null: not a VIP
  std::optional<std::string> node;  // null: no node was chosen, or one unknown here
  std::uint32_t node_id = 0;
  bool self = false;
  std::string verdict;  // "pass", "tx", "redirect" or "drop"
  std::optional<std::string> drop_reason;
  bool from_conntrack = false;
};

// --- keys --------------------------------------------------------------------

inline constexpr std::string_view kSocketActions[] = {"list", "adopt", "switch", "drain"};
inline constexpr std::string_view kYesNo[] = {"yes", "no"};

inline constexpr std::string_view kKeyOps[] = {"list", "install", "use", "remove", "generate"};

// One member's answer to a key request.
struct KeyMemberAnswer {
  std::string member;
  std::string outcome;               // "ok", "failed" or "no answer"
  std::optional<std::string> error;  // failed: why
  std::vector<std::string> keys;     // the ids of the keys it holds now, its primary's first
};

// `keys`: a key request on every member, or (generate) a new key.
struct KeysResult {
  std::string op;                     // one of kKeyOps
  std::optional<std::string> key_id;  // the key's id (16 hex digits); unset for list
  std::optional<std::string> key;     // generate only: the new key, 64 hex digits
  bool ok = false;                    // every member answered ok (generate: true)
  bool timed_out = false;             // some member did not answer in time
  double elapsed_s = 0;
  std::vector<KeyMemberAnswer> members;
  std::vector<std::string> local_keys;  // this node's key ids after it, the primary first
};

// --- vips --------------------------------------------------------------------

struct PacketRate {
  double pkts_per_s = 0;
  double bytes_per_s = 0;
};

// One backend of a VIP as this node sends to it (or serves it, self).
struct VipBackend {
  std::string name;
  bool self = false;
  // Its weight while it serves the VIP; unset for a member that no longer
  // serves it but still gets the flows the connection table pins to it.
  std::optional<std::uint32_t> weight;
  bool in_table = false;  // in the VIP's live Maglev table
  std::uint64_t pkts = 0, bytes = 0;
  std::optional<PacketRate> rate;
};

struct VipTraffic {
  std::string vip;
  std::optional<std::uint32_t> vip_id;
  // Packets from clients that this node balanced: served here or forwarded.
  std::uint64_t pkts = 0, bytes = 0;
  // Packets a peer balanced to this node.
  std::uint64_t from_peer_pkts = 0, from_peer_bytes = 0;
  std::uint64_t dropped = 0;
  std::optional<PacketRate> rate;
  std::optional<PacketRate> from_peer_rate;
  std::vector<VipBackend> backends;
};

// `vips`.
struct VipsResult {
  std::string node;
  // The interval the rates are over; unset until the daemon has two samples.
  std::optional<double> interval_s;
  std::vector<VipTraffic> vips;
};

// --- ct ----------------------------------------------------------------------

// One connection-table entry, as `ct` shows it.
struct CtRow {
  std::string client;  // "10.0.1.2:41000"
  std::string vip;     // "10.100.0.1:80"
  std::string proto;   // "tcp", "udp"
  std::string node;    // the serving node's name, or its id when unknown
  std::string state;   // active, closing or idle (as /metrics counts them)
  std::string flags;   // "syn,fin", "-"
  std::optional<double> age_s;  // since the entry was made; unset for an entry of 0.1.0
  double idle_s = 0;            // since its last packet (to within 0.1 s)
};

// `ct`.
struct CtResult {
  std::string node;
  std::size_t entries = 0;
  std::size_t capacity = 0;
  std::size_t matched = 0;
  std::vector<std::string> filter;  // "vip 10.100.0.1:80/tcp", "node mix2"
  std::vector<CtRow> rows;          // the most recent first
};

// --- monitor -----------------------------------------------------------------

// The log levels, least severe first, as node.log_level names them.
inline constexpr std::string_view kLogLevels[] = {"trace", "debug", "info",
                                                  "warn",  "error", "critical"};
// The index of `level` in kLogLevels.
std::optional<int> log_level_rank(std::string_view level);

// The first reply of `monitor`; events follow it.
struct MonitorStarted {
  std::string node;
  std::string level;  // log lines at this level or above are sent
};

// A member's state, weight or restart flag changed, it appeared, or gossip
// forgot it (state "forgotten").
struct MemberChange {
  std::string time;
  std::string name;
  std::string state;
  std::optional<std::string> previous;  // the state before; unset when it appeared
  std::optional<std::uint32_t> weight, previous_weight;  // set when its weight changed
  std::optional<bool> restarting;                        // set when that flag changed
};

// A node's app check changed its verdict.
struct HealthChange {
  std::string time;
  std::string node;
  bool healthy = false;
  std::string reason;  // this node's own checks only: the probe's result
};

struct LogLine {
  std::string time;
  std::string level;  // one of kLogLevels
  std::string message;
};

// This subscriber read too slowly and `count` events were lost since the
// last such notice (`total` since it subscribed).
struct EventsDropped {
  std::string time;
  std::uint64_t count = 0;
  std::uint64_t total = 0;
};

// One line of the monitor stream: {"event":"member"|"health"|"log"|"dropped", ...}.
struct MonitorEvent {
  std::variant<MemberChange, HealthChange, LogLine, EventsDropped> event;
};

// How people see a node id, here and in the log: "0x1a2b3c4d" (JSON carries
// the number).
std::string node_id_text(std::uint32_t id);

// "2024-05-01T10:00:00.123Z": UTC, milliseconds.
std::string event_time(std::chrono::system_clock::time_point at);

// --- wire forms ----------------------------------------------------------------

// Each type's pair, for nlohmann's ADL lookup.
void to_json(nlohmann::json& j, const ServiceCheckInfo& v);
void from_json(const nlohmann::json& j, ServiceCheckInfo& v);
void to_json(nlohmann::json& j, const NamedCounters& v);
void from_json(const nlohmann::json& j, NamedCounters& v);
void to_json(nlohmann::json& j, const VipPackets& v);
void from_json(const nlohmann::json& j, VipPackets& v);
void to_json(nlohmann::json& j, const NodePackets& v);
void from_json(const nlohmann::json& j, NodePackets& v);
void to_json(nlohmann::json& j, const VipStats& v);
void from_json(const nlohmann::json& j, VipStats& v);
void to_json(nlohmann::json& j, const StatsResult& v);
void from_json(const nlohmann::json& j, StatsResult& v);
void to_json(nlohmann::json& j, const NodeRow& v);
void from_json(const nlohmann::json& j, NodeRow& v);
void to_json(nlohmann::json& j, const InstanceInfo& v);
void from_json(const nlohmann::json& j, InstanceInfo& v);
void to_json(nlohmann::json& j, const AppCheckInfo& v);
void from_json(const nlohmann::json& j, AppCheckInfo& v);
void to_json(nlohmann::json& j, const GossipInfo& v);
void from_json(const nlohmann::json& j, GossipInfo& v);
void to_json(nlohmann::json& j, const ConntrackCounts& v);
void from_json(const nlohmann::json& j, ConntrackCounts& v);
void to_json(nlohmann::json& j, const StatusResult& v);
void from_json(const nlohmann::json& j, StatusResult& v);
void to_json(nlohmann::json& j, const MemberRow& v);
void from_json(const nlohmann::json& j, MemberRow& v);
void to_json(nlohmann::json& j, const GossipCounters& v);
void from_json(const nlohmann::json& j, GossipCounters& v);
void to_json(nlohmann::json& j, const CtRow& v);
void from_json(const nlohmann::json& j, CtRow& v);
void to_json(nlohmann::json& j, const CtResult& v);
void from_json(const nlohmann::json& j, CtResult& v);
void to_json(nlohmann::json& j, const MembersResult& v);
void from_json(const nlohmann::json& j, MembersResult& v);
void to_json(nlohmann::json& j, const DrainResult& v);
void from_json(const nlohmann::json& j, DrainResult& v);
void to_json(nlohmann::json& j, const LeaveResult& v);
void from_json(const nlohmann::json& j, LeaveResult& v);
void to_json(nlohmann::json& j, const KeyMemberAnswer& v);
void from_json(const nlohmann::json& j, KeyMemberAnswer& v);
void to_json(nlohmann::json& j, const KeysResult& v);
void from_json(const nlohmann::json& j, KeysResult& v);
void to_json(nlohmann::json& j, const ReloadResult& v);
void from_json(const nlohmann::json& j, ReloadResult& v);
void to_json(nlohmann::json& j, const WhichFlow& v);
void from_json(const nlohmann::json& j, WhichFlow& v);
void to_json(nlohmann::json& j, const WhichResult& v);
void from_json(const nlohmann::json& j, WhichResult& v);
void to_json(nlohmann::json& j, const PacketRate& v);
void from_json(const nlohmann::json& j, PacketRate& v);
void to_json(nlohmann::json& j, const VipBackend& v);
void from_json(const nlohmann::json& j, VipBackend& v);
void to_json(nlohmann::json& j, const VipTraffic& v);
void from_json(const nlohmann::json& j, VipTraffic& v);
void to_json(nlohmann::json& j, const VipsResult& v);
void from_json(const nlohmann::json& j, VipsResult& v);
void to_json(nlohmann::json& j, const MonitorStarted& v);
void from_json(const nlohmann::json& j, MonitorStarted& v);
void to_json(nlohmann::json& j, const MemberChange& v);
void from_json(const nlohmann::json& j, MemberChange& v);
void to_json(nlohmann::json& j, const HealthChange& v);
void from_json(const nlohmann::json& j, HealthChange& v);
void to_json(nlohmann::json& j, const LogLine& v);
void from_json(const nlohmann::json& j, LogLine& v);
void to_json(nlohmann::json& j, const EventsDropped& v);
void from_json(const nlohmann::json& j, EventsDropped& v);
void to_json(nlohmann::json& j, const MonitorEvent& v);
void from_json(const nlohmann::json& j, MonitorEvent& v);

}  // namespace mixlb
